using LoraHub.Core.Runtime;
using LoraHub.Functions;
using LoraHub.Functions.Telemetry;
using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

// The LoraHub Functions app (isolated worker): blob and HTTP triggers start ComposeOrchestrator, whose activities
// score candidates on models cached per process. Settings: section "LoraHub" (README, "Settings reference").
// Before anything loads libtorch: the worker shares its CPU, so idle OpenMP threads must sleep, not spin.
TorchStartup.ConfigureThreads();
var builder = FunctionsApplication.CreateBuilder(args);
builder.ConfigureFunctionsWebApplication();
builder.Services.AddLoraHub(builder.Configuration);
builder.AddLoraHubLogging();

var app = builder.Build();
LoraHubServices.ApplyTorchSettings(app.Services.GetRequiredService<IOptions<LoraHubOptions>>().Value);
app.Run();
