// Parameters of infra/main.bicep (az deployment group create -g RG -f infra/main.bicep -p infra/main.bicepparam).
using './main.bicep'

param name = 'lorahub'
param premiumSku = 'EP2'
param gpuProfileType = 'Consumption-GPU-NC8as-T4'
param imageName = 'lorahub-functions'
param cpuTag = 'cpu'
param gpuTag = 'cuda'
param evaluatorMaxReplicas = 2
param evaluatorTimeoutSeconds = 900
