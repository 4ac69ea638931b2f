// Log Analytics workspace + workspace-based Application Insights.
// Diagnostic settings for Application Gateway, Key Vault, Azure OpenAI and
// Azure AI Search live next to those resources (appgateway.bicep,
// keyvault.bicep, openai.bicep, search.bicep) and point at this workspace;
// AKS sends Container insights data here through the omsagent add-on.

@description('Azure region.')
param location string

@description('Prefix for resource names.')
param baseName string

@description('Log retention in days.')
@minValue(30)
@maxValue(730)
param retentionInDays int

@description('Disable instrumentation-key (local) auth on Application Insights so only Entra-authenticated telemetry is accepted. Leave false until the OpenTelemetry collector that forwards chatgate (Spin OTLP) telemetry authenticates with Entra.')
param appInsightsDisableLocalAuth bool

@description('Resource tags.')
param tags object

resource workspace 'Microsoft.OperationalInsights/workspaces@2022-10-01' = {
  name: 'log-${baseName}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      enableLogAccessUsingOnlyResourcePermissions: true
    }
    // Private ingestion/query needs an Azure Monitor Private Link Scope
    // (AMPLS), not deployed here; see infra/README.md.
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${baseName}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    DisableLocalAuth: appInsightsDisableLocalAuth
  }
}

output workspaceId string = workspace.id
output workspaceName string = workspace.name
output appInsightsId string = appInsights.id
output appInsightsConnectionString string = appInsights.properties.ConnectionString
