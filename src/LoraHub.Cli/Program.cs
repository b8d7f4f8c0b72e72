using TorchSharp;
var t = torch.ones(2, 3);
System.Console.WriteLine(t.sum().item<float>());
