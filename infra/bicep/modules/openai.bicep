// Azure OpenAI account (Entra-only auth, no public network access) with a chat
// model deployment, private endpoint and privatelink.openai.azure.com record.

@description('Azure region (must offer the chosen model/deployment SKU).')
param location string

@description('Account name; also used as the custom subdomain (<name>.openai.azure.com), so it must be globally unique.')
param accountName string

@description('Disable API-key auth so only Entra ID (managed/workload identity) tokens are accepted. See infra/README.md "Azure OpenAI authentication from Wasm" before leaving this true.')
param disableLocalAuth bool

@description('Deployment name the app calls (Spin variable openai_model, with openai_api_flavor = azure).')
param deploymentName string

@description('Model name.')
param modelName string

@description('Model version.')
param modelVersion string

@description('Deployment SKU: GlobalStandard (may process in any Azure region), DataZoneStandard or Standard (regional).')
@allowed([
  'GlobalStandard'
  'DataZoneStandard'
  'Standard'
])
param deploymentSkuName string

@description('Deployment capacity in units of 1,000 tokens per minute.')
@minValue(1)
param deploymentCapacity int

@description('Private endpoint subnet resource id.')
param privateEndpointsSubnetId string

@description('privatelink.openai.azure.com zone resource id.')
param privateDnsZoneId string

@description('Log Analytics workspace resource id for diagnostic settings.')
param workspaceId string

@description('Resource tags.')
param tags object

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  name: accountName
  location: location
  tags: tags
  kind: 'OpenAI'
  sku: {
    name: 'S0'
  }
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    customSubDomainName: accountName
    publicNetworkAccess: 'Disabled'
    disableLocalAuth: disableLocalAuth
    // The account itself makes no outbound calls in this design.
    restrictOutboundNetworkAccess: true
    allowedFqdnList: []
    networkAcls: {
      defaultAction: 'Deny'
      ipRules: []
      virtualNetworkRules: []
    }
  }
}

resource deployment 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = {
  parent: account
  name: deploymentName
  sku: {
    name: deploymentSkuName
    capacity: deploymentCapacity
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: modelName
      version: modelVersion
    }
    raiPolicyName: 'Microsoft.DefaultV2'
    versionUpgradeOption: 'NoAutoUpgrade'
  }
}

resource privateEndpoint 'Microsoft.Network/privateEndpoints@2024-05-01' = {
  name: 'pe-${accountName}'
  location: location
  tags: tags
  properties: {
    subnet: {
      id: privateEndpointsSubnetId
    }
    privateLinkServiceConnections: [
      {
        name: 'account'
        properties: {
          privateLinkServiceId: account.id
          groupIds: [
            'account'
          ]
        }
      }
    ]
  }
}

resource privateDnsZoneGroup 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = {
  parent: privateEndpoint
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: 'privatelink-openai-azure-com'
        properties: {
          privateDnsZoneId: privateDnsZoneId
        }
      }
    ]
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: account
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output accountId string = account.id
output accountName string = account.name
output endpoint string = account.properties.endpoint
@description('Origin for the Spin variable openai_origin: https://<custom subdomain>.openai.azure.com, no path or trailing slash (account.properties.endpoint ends in a slash).')
output origin string = 'https://${account.properties.customSubDomainName}.openai.azure.com'
output deploymentName string = deployment.name
