// Azure Container Registry (Premium: the SKU that has private endpoints) holding the
// gateway image (`make image`) and the mirrored OpenTelemetry Collector. Public access
// off; the nodes pull through the private endpoint (privatelink.azurecr.io) with the
// kubelet identity, which gets AcrPull here.

@description('Azure region.')
param location string

@description('Registry name (5-50 alphanumerics, globally unique).')
@minLength(5)
@maxLength(50)
param registryName string

@description('Private endpoint subnet resource id.')
param privateEndpointsSubnetId string

@description('privatelink.azurecr.io zone resource id.')
param privateDnsZoneId string

@description('Object id of the AKS kubelet identity (AcrPull).')
param kubeletIdentityObjectId string

@description('Zone-redundant registry storage (regions with availability zones only).')
param zoneRedundant bool

@description('Days an untagged manifest is kept before the retention policy deletes it.')
param untaggedRetentionDays int

@description('Log Analytics workspace resource id for diagnostic settings.')
param workspaceId string

@description('Resource tags.')
param tags object

var acrPullRoleId = '7f951dda-4ed3-4680-a7ca-43fe172d538d'

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: registryName
  location: location
  tags: tags
  sku: {
    name: 'Premium'
  }
  properties: {
    adminUserEnabled: false
    anonymousPullEnabled: false
    publicNetworkAccess: 'Disabled'
    networkRuleBypassOptions: 'None'
    // A regional data endpoint (<name>.<region>.data.azurecr.io) gets its own
    // private endpoint address, so blob downloads stay inside the VNet too.
    dataEndpointEnabled: true
    zoneRedundancy: zoneRedundant ? 'Enabled' : 'Disabled'
    policies: {
      retentionPolicy: {
        status: 'enabled'
        days: untaggedRetentionDays
      }
      // Images leave only by pull, never by `az acr import` into another registry.
      exportPolicy: {
        status: 'disabled'
      }
    }
  }
}

resource privateEndpoint 'Microsoft.Network/privateEndpoints@2024-05-01' = {
  name: 'pe-${registryName}'
  location: location
  tags: tags
  properties: {
    subnet: {
      id: privateEndpointsSubnetId
    }
    privateLinkServiceConnections: [
      {
        name: 'registry'
        properties: {
          privateLinkServiceId: registry.id
          groupIds: [
            'registry'
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
        name: 'privatelink-azurecr-io'
        properties: {
          privateDnsZoneId: privateDnsZoneId
        }
      }
    ]
  }
}

resource kubeletAcrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, 'kubelet', acrPullRoleId)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPullRoleId)
    principalId: kubeletIdentityObjectId
    principalType: 'ServicePrincipal'
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: registry
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

output registryId string = registry.id
output registryName string = registry.name
output loginServer string = registry.properties.loginServer
