// Spoke network for chatgate: VNet, subnets, NSGs and the private DNS zones
// used by the private endpoints (Key Vault, Azure OpenAI, Azure AI Search).

@description('Azure region.')
param location string

@description('Prefix for resource names.')
param baseName string

@description('VNet address space.')
param vnetAddressPrefix string

@description('Application Gateway subnet (dedicated, WAF_v2 needs /24 or /26+ for scale).')
param appGwSubnetPrefix string

@description('AKS node subnet. With Azure CNI Overlay only nodes and the internal load balancer frontend take IPs here.')
param aksNodesSubnetPrefix string

@description('Private endpoint subnet (Key Vault, Azure OpenAI, Azure AI Search).')
param privateEndpointsSubnetPrefix string

@description('Optional subnet for a jumpbox / self-hosted build agents (needed to reach the private AKS API server, Key Vault data plane and the search index).')
param buildAgentsSubnetPrefix string

@description('Create the jumpbox/build-agents subnet.')
param deployBuildAgentsSubnet bool

@description('Source allowed to reach the Application Gateway listener on 443 (service tag or CIDR). The reference architecture fronts it with the internet.')
param appGwAllowedSourceAddressPrefix string

@description('Resource tags.')
param tags object

var vnetName = 'vnet-${baseName}'
var appGwSubnetName = 'snet-appgw'
var aksNodesSubnetName = 'snet-aks-nodes'
var privateEndpointsSubnetName = 'snet-private-endpoints'
var buildAgentsSubnetName = 'snet-build-agents'

// Order matters: outputs below index into this array.
var privateDnsZoneNames = [
  'privatelink.vaultcore.azure.net' // Key Vault
  'privatelink.openai.azure.com' // Azure OpenAI
  'privatelink.search.windows.net' // Azure AI Search
]

// ---------------------------------------------------------------- NSGs

resource nsgAppGw 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: 'nsg-${baseName}-appgw'
  location: location
  tags: tags
  properties: {
    securityRules: [
      {
        // Required by Application Gateway v2 (infrastructure communication).
        name: 'AllowGatewayManagerInbound'
        properties: {
          priority: 100
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: 'GatewayManager'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '65200-65535'
        }
      }
      {
        name: 'AllowAzureLoadBalancerInbound'
        properties: {
          priority: 110
          direction: 'Inbound'
          access: 'Allow'
          protocol: '*'
          sourceAddressPrefix: 'AzureLoadBalancer'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '*'
        }
      }
      {
        name: 'AllowHttpsInbound'
        properties: {
          priority: 120
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: appGwAllowedSourceAddressPrefix
          sourcePortRange: '*'
          destinationAddressPrefix: appGwSubnetPrefix
          destinationPortRange: '443'
        }
      }
      {
        name: 'DenyAllInbound'
        properties: {
          priority: 4096
          direction: 'Inbound'
          access: 'Deny'
          protocol: '*'
          sourceAddressPrefix: '*'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '*'
        }
      }
    ]
  }
}

resource nsgAksNodes 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: 'nsg-${baseName}-aks-nodes'
  location: location
  tags: tags
  properties: {
    securityRules: [
      {
        // AppGw -> internal load balancer (Service chatgate-ilb) -> pods :80.
        name: 'AllowAppGwToIngressHttp'
        properties: {
          priority: 100
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: appGwSubnetPrefix
          sourcePortRange: '*'
          destinationAddressPrefix: aksNodesSubnetPrefix
          destinationPortRange: '80'
        }
      }
      {
        name: 'DenyInternetInbound'
        properties: {
          priority: 4000
          direction: 'Inbound'
          access: 'Deny'
          protocol: '*'
          sourceAddressPrefix: 'Internet'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '*'
        }
      }
    ]
  }
}

resource nsgPrivateEndpoints 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: 'nsg-${baseName}-private-endpoints'
  location: location
  tags: tags
  properties: {
    securityRules: concat([
      {
        // Pod egress leaves the node SNATed to the node IP under CNI Overlay.
        name: 'AllowHttpsFromAksNodes'
        properties: {
          priority: 100
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: aksNodesSubnetPrefix
          sourcePortRange: '*'
          destinationAddressPrefix: privateEndpointsSubnetPrefix
          destinationPortRange: '443'
        }
      }
      {
        // Application Gateway reads its TLS certificate from Key Vault.
        name: 'AllowHttpsFromAppGw'
        properties: {
          priority: 110
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: appGwSubnetPrefix
          sourcePortRange: '*'
          destinationAddressPrefix: privateEndpointsSubnetPrefix
          destinationPortRange: '443'
        }
      }
    ], deployBuildAgentsSubnet ? [
      {
        name: 'AllowHttpsFromBuildAgents'
        properties: {
          priority: 120
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: buildAgentsSubnetPrefix
          sourcePortRange: '*'
          destinationAddressPrefix: privateEndpointsSubnetPrefix
          destinationPortRange: '443'
        }
      }
    ] : [], [
      {
        name: 'DenyAllInbound'
        properties: {
          priority: 4096
          direction: 'Inbound'
          access: 'Deny'
          protocol: '*'
          sourceAddressPrefix: '*'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '*'
        }
      }
    ])
  }
}

resource nsgBuildAgents 'Microsoft.Network/networkSecurityGroups@2024-05-01' = if (deployBuildAgentsSubnet) {
  name: 'nsg-${baseName}-build-agents'
  location: location
  tags: tags
  properties: {
    // Default rules only: VNet-internal inbound allowed, internet inbound
    // denied. Reach the jumpbox through Azure Bastion or a VPN, never a public IP.
    securityRules: []
  }
}

// ---------------------------------------------------------------- VNet

var baseSubnets = [
  {
    name: appGwSubnetName
    properties: {
      addressPrefix: appGwSubnetPrefix
      networkSecurityGroup: { id: nsgAppGw.id }
    }
  }
  {
    name: aksNodesSubnetName
    properties: {
      addressPrefix: aksNodesSubnetPrefix
      networkSecurityGroup: { id: nsgAksNodes.id }
      privateEndpointNetworkPolicies: 'Disabled'
      privateLinkServiceNetworkPolicies: 'Enabled'
    }
  }
  {
    name: privateEndpointsSubnetName
    properties: {
      addressPrefix: privateEndpointsSubnetPrefix
      networkSecurityGroup: { id: nsgPrivateEndpoints.id }
      // Makes the NSG above apply to private endpoint traffic.
      privateEndpointNetworkPolicies: 'Enabled'
    }
  }
]

var buildSubnet = {
  name: buildAgentsSubnetName
  properties: {
    addressPrefix: buildAgentsSubnetPrefix
    networkSecurityGroup: {
      id: resourceId('Microsoft.Network/networkSecurityGroups', 'nsg-${baseName}-build-agents')
    }
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: vnetName
  location: location
  tags: tags
  dependsOn: [
    nsgBuildAgents
  ]
  properties: {
    addressSpace: {
      addressPrefixes: [
        vnetAddressPrefix
      ]
    }
    subnets: deployBuildAgentsSubnet ? concat(baseSubnets, [buildSubnet]) : baseSubnets
  }
}

// ---------------------------------------------------------------- Private DNS

resource privateDnsZones 'Microsoft.Network/privateDnsZones@2020-06-01' = [
  for zone in privateDnsZoneNames: {
    name: zone
    location: 'global'
    tags: tags
  }
]

resource privateDnsZoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [
  for (zone, i) in privateDnsZoneNames: {
    parent: privateDnsZones[i]
    name: 'link-${vnetName}'
    location: 'global'
    tags: tags
    properties: {
      registrationEnabled: false
      virtualNetwork: {
        id: vnet.id
      }
    }
  }
]

output vnetId string = vnet.id
output vnetName string = vnet.name
output appGwSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnetName, appGwSubnetName)
output aksNodesSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnetName, aksNodesSubnetName)
output aksNodesSubnetName string = aksNodesSubnetName
output privateEndpointsSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnetName, privateEndpointsSubnetName)

output keyVaultPrivateDnsZoneId string = privateDnsZones[0].id
output openAiPrivateDnsZoneId string = privateDnsZones[1].id
output searchPrivateDnsZoneId string = privateDnsZones[2].id
