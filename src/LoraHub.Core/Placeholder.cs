namespace LoraHub.Core; public static class Placeholder {}
