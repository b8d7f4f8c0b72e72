// LoraHub on Azure: one storage account (the hub and the Durable task hub), the Functions app that takes the
// triggers and runs the orchestration (Linux Elastic Premium, always ready), and the same image on serverless
// GPUs (Azure Container Apps workload profile) that does the EvaluateCandidates work.
//
//   examples/{task}.jsonl ─BlobTrigger─┐        ┌── EvaluateCandidates activity ──POST /api/evaluate──► GPU evaluator app
//   POST /api/compositions ──HTTP──────┴► front app (Premium): ComposeOrchestrator, SelectModules, MaterializeAdapter
//
// Why two apps and an HTTP hop: every worker of a Durable task hub must run every orchestrator and activity (the
// Azure Storage backend cannot route an activity to a subset of workers), so the GPU app is not a worker of the
// front app's task hub. The front app's EvaluateCandidates activity sends its chunk to the GPU app
// (LoraHub__EvaluatorUrl); a failure there fails the activity and the orchestrator's retry policy tries again.
// The GPU app runs with its own (idle) task hub and its blob trigger disabled, and scales with HTTP load, to zero.
//
// Deploy: README "Deployment". Compile check: scripts/bicep.sh (run by the Functions tests).

targetScope = 'resourceGroup'

@description('Prefix of every resource name (letters and digits, 3-11 characters).')
@minLength(3)
@maxLength(11)
param name string = 'lorahub'

@description('Azure region of every resource.')
param location string = resourceGroup().location

@description('Elastic Premium plan of the front app (EP2+: it holds the base model in memory for merges and /generate).')
@allowed([ 'EP1', 'EP2', 'EP3' ])
param premiumSku string = 'EP2'

@description('Serverless GPU workload profile of the evaluator app.')
@allowed([ 'Consumption-GPU-NC8as-T4', 'Consumption-GPU-NC24-A100' ])
param gpuProfileType string = 'Consumption-GPU-NC8as-T4'

@description('Repository of the app image in the registry this template creates (docker build of the repository root Dockerfile).')
param imageName string = 'lorahub-functions'

@description('Tag of the CPU image (TORCH_BACKEND=cpu) run by the front app.')
param cpuTag string = 'cpu'

@description('Tag of the CUDA image (TORCH_BACKEND=cuda) run by the GPU evaluator app.')
param gpuTag string = 'cuda'

@description('Most GPU replicas of the evaluator app (it scales to zero when idle).')
@minValue(1)
@maxValue(20)
param evaluatorMaxReplicas int = 2

@description('How long the front app waits for one EvaluateCandidates call on the GPU app (seconds).')
param evaluatorTimeoutSeconds int = 900

@description('Object id of a user or group allowed to push models, modules and examples into the hub (Storage Blob Data Contributor); empty: none. The account takes no keys, so `lorahub hub push` signs in with Entra ID (az login).')
param hubWriterPrincipalId string = ''

var suffix = uniqueString(resourceGroup().id)
var storageName = toLower(take('${replace(name, '-', '')}${suffix}', 24))
var hubContainers = [ 'models', 'modules', 'examples', 'adapters' ]
var gpuProfileName = 'gpu'
var gpuResources = gpuProfileType == 'Consumption-GPU-NC8as-T4'
  ? { cpu: 8, memory: '56Gi' }
  : { cpu: 24, memory: '220Gi' }

// ---- identity and registry -------------------------------------------------------------------------------------

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${name}-id-${suffix}'
  location: location
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: toLower(take('${replace(name, '-', '')}acr${suffix}', 50))
  location: location
  sku: { name: 'Basic' }
  properties: {
    adminUserEnabled: false
  }
}

var acrPullRole = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '7f951dda-4ed3-4680-a7ca-43fe172d538d')

resource identityCanPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, identity.id, acrPullRole)
  scope: registry
  properties: {
    roleDefinitionId: acrPullRole
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---- storage: the hub (4 containers) and the Durable task hub --------------------------------------------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageName
  location: location
  sku: { name: 'Standard_LRS' }
  kind: 'StorageV2'
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    // Keyless: the apps sign in with their managed identity (role assignments below); no account key is ever read.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    accessTier: 'Hot'
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for c in hubContainers: {
  parent: blobs
  name: c
  properties: {
    publicAccess: 'None'
  }
}]

// The apps' managed identity: blobs (the hub, the host's locks and blob-trigger receipts), queues and tables (the
// Durable task hub, the blob trigger's poison queue).
var storageRoles = {
  blobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  queueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  tableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
}

resource identityUsesStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in items(storageRoles): {
  name: guid(storage.id, identity.id, role.value)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.value)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}]

var blobDataContributorRole = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'ba92f5b4-2d11-453d-a403-e96b0029c9fe')

resource writerCanPush 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(hubWriterPrincipalId)) {
  name: guid(storage.id, hubWriterPrincipalId, blobDataContributorRole)
  scope: storage
  properties: {
    roleDefinitionId: blobDataContributorRole
    principalId: hubWriterPrincipalId
  }
}

// Identity-based connections (no connection string): the Functions host's storage and the hub's, the latter read by
// the blob trigger (LoraHub:Storage connection) and by the app's hub store (HubConnection) alike.
var blobEndpoint = storage.properties.primaryEndpoints.blob
var queueEndpoint = storage.properties.primaryEndpoints.queue
var storageSettings = [
  { name: 'AzureWebJobsStorage__accountName', value: storage.name }
  { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
  { name: 'AzureWebJobsStorage__clientId', value: identity.properties.clientId }
  { name: 'LoraHub__Storage__blobServiceUri', value: blobEndpoint }
  { name: 'LoraHub__Storage__queueServiceUri', value: queueEndpoint }
  { name: 'LoraHub__Storage__credential', value: 'managedidentity' }
  { name: 'LoraHub__Storage__clientId', value: identity.properties.clientId }
]

// ---- monitoring ------------------------------------------------------------------------------------------------

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${name}-logs-${suffix}'
  location: location
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${name}-ai-${suffix}'
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
  }
}

// ---- GPU evaluators: the same image on serverless GPUs (Azure Functions on Azure Container Apps) ---------------

resource acaEnvironment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: '${name}-env-${suffix}'
  location: location
  properties: {
    // Logs through Azure Monitor (the diagnostic setting below) rather than the workspace's shared key.
    appLogsConfiguration: {
      destination: 'azure-monitor'
    }
    workloadProfiles: [
      { name: 'Consumption', workloadProfileType: 'Consumption' }
      { name: gpuProfileName, workloadProfileType: gpuProfileType }
    ]
  }
}

resource acaLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'logs'
  scope: acaEnvironment
  properties: {
    workspaceId: logs.id
    logs: [ { categoryGroup: 'allLogs', enabled: true } ]
  }
}

var commonSettings = concat(storageSettings, [
  { name: 'FUNCTIONS_EXTENSION_VERSION', value: '~4' }
  { name: 'FUNCTIONS_WORKER_RUNTIME', value: 'dotnet-isolated' }
  { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
  { name: 'LoraHub__CacheRoot', value: '/tmp/lorahub-cache' }
  { name: 'OMP_WAIT_POLICY', value: 'PASSIVE' }
])

resource evaluator 'Microsoft.Web/sites@2024-04-01' = {
  name: '${name}-gpu-${suffix}'
  location: location
  kind: 'functionapp,linux,container,azurecontainerapps'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  dependsOn: [ identityCanPull, identityUsesStorage ]
  properties: {
    managedEnvironmentId: acaEnvironment.id
    workloadProfileName: gpuProfileName
    resourceConfig: gpuResources
    siteConfig: {
      linuxFxVersion: 'DOCKER|${registry.properties.loginServer}/${imageName}:${gpuTag}'
      acrUseManagedIdentityCreds: true
      acrUserManagedIdentityID: identity.properties.clientId
      functionAppScaleLimit: evaluatorMaxReplicas
      minimumElasticInstanceCount: 0
      appSettings: concat(commonSettings, [
        // Not a worker of the front app's task hub (see the top of this file), and no second blob trigger.
        { name: 'AzureFunctionsJobHost__extensions__durableTask__hubName', value: 'LoraHubEvaluator' }
        { name: 'AzureWebJobs.ExamplesBlobTrigger.Disabled', value: 'true' }
        { name: 'LoraHub__Device', value: 'cuda' }
        { name: 'LoraHub__BatchCandidates', value: 'true' }
        { name: 'LoraHub__MaxModels', value: '1' }
      ])
    }
  }
}

// ---- the front app: triggers, orchestration, merges (Linux Elastic Premium) -----------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: '${name}-plan-${suffix}'
  location: location
  kind: 'elastic'
  sku: {
    name: premiumSku
    tier: 'ElasticPremium'
  }
  properties: {
    reserved: true // Linux
    maximumElasticWorkerCount: 4
  }
}

resource front 'Microsoft.Web/sites@2024-04-01' = {
  name: '${name}-func-${suffix}'
  location: location
  kind: 'functionapp,linux,container'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  dependsOn: [ identityCanPull, identityUsesStorage ]
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      linuxFxVersion: 'DOCKER|${registry.properties.loginServer}/${imageName}:${cpuTag}'
      acrUseManagedIdentityCreds: true
      acrUserManagedIdentityID: identity.properties.clientId
      minimumElasticInstanceCount: 1
      ftpsState: 'Disabled'
      minTlsVersion: '1.2'
      appSettings: concat(commonSettings, [
        { name: 'WEBSITES_ENABLE_APP_SERVICE_STORAGE', value: 'false' }
        { name: 'LoraHub__EvaluatorUrl', value: 'https://${evaluator.properties.defaultHostName}' }
        { name: 'LoraHub__EvaluatorKey', value: listKeys('${evaluator.id}/host/default', '2024-04-01').functionKeys.default }
        { name: 'LoraHub__EvaluatorTimeoutSeconds', value: string(evaluatorTimeoutSeconds) }
        { name: 'AzureWebJobs.EvaluateCandidatesHttp.Disabled', value: 'true' }
      ])
    }
  }
}

output storageAccount string = storage.name
output hubBlobEndpoint string = blobEndpoint
output registryLoginServer string = registry.properties.loginServer
output frontAppHost string = front.properties.defaultHostName
output evaluatorAppHost string = evaluator.properties.defaultHostName
output hubContainers array = hubContainers
