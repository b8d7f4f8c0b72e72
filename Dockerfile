# The LoraHub Functions app as a container image: what infra/main.bicep runs on the Premium plan (cpu) and on the
# serverless GPUs of Azure Container Apps (cuda).
#
#   docker build -t lorahub-functions:cpu .
#   docker build -t lorahub-functions:cuda --build-arg TORCH_BACKEND=cuda .
#
# TORCH_BACKEND is passed to MSBuild as -p:TorchBackend (Directory.Build.props): cpu references libtorch-cpu-linux-x64,
# cuda references libtorch-cuda-12.8-linux-x64 (which bundles the CUDA runtime; the GPU driver comes from the host).
# The publish step also patches libLibTorchSharp.so for Debian 12's libstdc++ (Directory.Build.targets), which the
# Functions base image is built on.
ARG TORCH_BACKEND=cpu

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
ARG TORCH_BACKEND
WORKDIR /src
COPY Directory.Build.props Directory.Build.targets Directory.Packages.props host.json local.settings.sample.json ./
COPY build/ build/
COPY src/LoraHub.Core/ src/LoraHub.Core/
COPY src/LoraHub.Storage/ src/LoraHub.Storage/
COPY src/LoraHub.Functions/ src/LoraHub.Functions/
RUN rm -rf src/*/bin src/*/obj \
 && dotnet publish src/LoraHub.Functions/LoraHub.Functions.csproj -c Release -p:TorchBackend=${TORCH_BACKEND} -o /home/site/wwwroot \
 && test -f /home/site/wwwroot/functions.metadata

FROM mcr.microsoft.com/azure-functions/dotnet-isolated:4-dotnet-isolated10.0
ARG TORCH_BACKEND
ENV AzureWebJobsScriptRoot=/home/site/wwwroot \
    AzureFunctionsJobHost__Logging__Console__IsEnabled=true \
    OMP_WAIT_POLICY=PASSIVE \
    LoraHub__CacheRoot=/tmp/lorahub-cache \
    LORAHUB_TORCH_BACKEND=${TORCH_BACKEND}
COPY --from=build /home/site/wwwroot /home/site/wwwroot
