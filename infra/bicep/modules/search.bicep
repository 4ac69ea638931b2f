// Azure AI Search (no public network access) with a private endpoint and
// privatelink.search.windows.net record. The `retrieval` component queries it.

@description('Azure region.')
param location string

@description('Search service name (2-60 chars, lowercase, globally unique).')
@minLength(2)
@maxLength(60)
param searchName string

@description('SKU. Private endpoints need basic or higher.')
@allowed([
  'basic'
  'standard'
  'standard2'
  'standard3'
])
param skuName string

@description('Replicas (3+ for the read/write SLA; 2+ for the read SLA).')
@minValue(1)
@maxValue(12)
param replicaCount int

@description('Disable API-key auth so only Entra ID tokens (Search Index Data Reader role) are accepted.')
param disableLocalAuth bool

@description('Private endpoint subnet resource id.')
param privateEndpointsSubnetId string

@description('privatelink.search.windows.net zone resource id.')
param privateDnsZoneId string

@description('Log Analytics workspace resource id for diagnostic settings.')
param workspaceId string

@description('Resource tags.')
param tags object

var apiKeyOrEntraAuth = {
  aadOrApiKey: {
    aadAuthFailureMode: 'http401WithBearerChallenge'
  }
}

resource search 'Microsoft.Search/searchServices@2023-11-01' = {
  name: searchName
  location: location
  tags: tags
  sku: {
    name: skuName
  }
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    replicaCount: replicaCount
    partitionCount: 1
    hostingMode: 'default'
    publicNetworkAccess: 'disabled'
    disableLocalAuth: disableLocalAuth
    // authOptions must be absent when local auth is disabled.
    authOptions: disableLocalAuth ? null : apiKeyOrEntraAuth
    networkRuleSet: {
      ipRules: []
    }
  }
}

resource privateEndpoint 'Microsoft.Network/privateEndpoints@2024-05-01' = {
  name: 'pe-${searchName}'
  location: location
  tags: tags
  properties: {
    subnet: {
      id: privateEndpointsSubnetId
    }
    privateLinkServiceConnections: [
      {
        name: 'searchService'
        properties: {
          privateLinkServiceId: search.id
          groupIds: [
            'searchService'
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
        name: 'privatelink-search-windows-net'
        properties: {
          privateDnsZoneId: privateDnsZoneId
        }
      }
    ]
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: search
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

output searchId string = search.id
output searchName string = search.name
output endpoint string = 'https://${search.name}.search.windows.net'
