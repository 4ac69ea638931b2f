// Spoke network for chatgate: VNet, subnets, NSGs, the egress route table and the
// private DNS zones used by the private endpoints (Key Vault, Azure OpenAI, Azure AI
// Search, Container Registry). Azure Firewall (firewall.bicep) and Bastion with the
// jump box (jumpbox.bicep) are deployed into the subnets declared here.

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

@description('Jump box / self-hosted build agent subnet (reaches the private AKS API server, the Key Vault data plane, the registry and the search index).')
param buildAgentsSubnetPrefix string

@description('AzureFirewallSubnet (at least /26).')
param firewallSubnetPrefix string

@description('AzureBastionSubnet (at least /26).')
param bastionSubnetPrefix string

@description('Private IP of the Azure Firewall, the next hop of the egress route. Azure gives the firewall the first usable address of AzureFirewallSubnet (.4 of the prefix); main.bicep outputs the address the firewall really got, to compare.')
param firewallPrivateIp string

@description('AKS overlay pod CIDR: with Azure CNI Overlay, pod-to-pod traffic between nodes crosses the node subnet with pod addresses, so the NSG must admit it.')
param podCidr string

@description('Source allowed to reach the Application Gateway listener on 443 (service tag or CIDR). The reference architecture fronts it with the internet.')
param appGwAllowedSourceAddressPrefix string

@description('Resource tags.')
param tags object

var vnetName = 'vnet-${baseName}'
var appGwSubnetName = 'snet-appgw'
var aksNodesSubnetName = 'snet-aks-nodes'
var privateEndpointsSubnetName = 'snet-private-endpoints'
var buildAgentsSubnetName = 'snet-build-agents'
// Names Azure requires for these two services.
var firewallSubnetName = 'AzureFirewallSubnet'
var bastionSubnetName = 'AzureBastionSubnet'

// Order matters: outputs below index into this array.
var privateDnsZoneNames = [
  'privatelink.vaultcore.azure.net' // Key Vault
  'privatelink.openai.azure.com' // Azure OpenAI
  'privatelink.search.windows.net' // Azure AI Search
  'privatelink.azurecr.io' // Container Registry (registry and its regional data endpoint)
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
        // AppGw -> internal load balancer (Service chatgate-ilb, HTTPS 443) -> pods :8080.
        // AKS sets floating IP on the load balancer rule, so the NSG sees the frontend port.
        name: 'AllowAppGwToIngressHttps'
        properties: {
          priority: 100
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: appGwSubnetPrefix
          sourcePortRange: '*'
          destinationAddressPrefix: aksNodesSubnetPrefix
          destinationPortRange: '443'
        }
      }
      {
        // CNI Overlay: pods on different nodes talk with pod addresses, which are not
        // in the VNet's address space and so not covered by AllowVnetInBound.
        name: 'AllowPodsInbound'
        properties: {
          priority: 110
          direction: 'Inbound'
          access: 'Allow'
          protocol: '*'
          sourceAddressPrefixes: [
            aksNodesSubnetPrefix
            podCidr
          ]
          sourcePortRange: '*'
          destinationAddressPrefix: podCidr
          destinationPortRange: '*'
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
      {
        // Node to node, and to the private API server endpoint AKS puts in this subnet.
        name: 'AllowNodesOutbound'
        properties: {
          priority: 100
          direction: 'Outbound'
          access: 'Allow'
          protocol: '*'
          sourceAddressPrefix: aksNodesSubnetPrefix
          sourcePortRange: '*'
          destinationAddressPrefix: aksNodesSubnetPrefix
          destinationPortRange: '*'
        }
      }
      {
        name: 'AllowPodsOutbound'
        properties: {
          priority: 110
          direction: 'Outbound'
          access: 'Allow'
          protocol: '*'
          sourceAddressPrefixes: [
            aksNodesSubnetPrefix
            podCidr
          ]
          sourcePortRange: '*'
          destinationAddressPrefix: podCidr
          destinationPortRange: '*'
        }
      }
      {
        // Key Vault (CSI driver on the node), Azure OpenAI, Azure AI Search, the registry.
        name: 'AllowPrivateEndpointsOutbound'
        properties: {
          priority: 120
          direction: 'Outbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: '*'
          sourcePortRange: '*'
          destinationAddressPrefix: privateEndpointsSubnetPrefix
          destinationPortRange: '443'
        }
      }
      {
        // Everything bound for the internet leaves through the route table to Azure
        // Firewall, whose allow-list (firewall.bicep) decides by name. An NSG checks the
        // original destination, not the next hop, so it can only narrow the protocols.
        name: 'AllowWebOutboundThroughFirewall'
        properties: {
          priority: 130
          direction: 'Outbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: '*'
          sourcePortRange: '*'
          destinationAddressPrefix: 'Internet'
          destinationPortRanges: [
            '443'
            '80'
          ]
        }
      }
      {
        name: 'AllowNtpOutboundThroughFirewall'
        properties: {
          priority: 140
          direction: 'Outbound'
          access: 'Allow'
          protocol: 'Udp'
          sourceAddressPrefix: '*'
          sourcePortRange: '*'
          destinationAddressPrefix: 'Internet'
          destinationPortRange: '123'
        }
      }
      {
        // Azure DNS (168.63.129.16) and IMDS are platform addresses that NSG rules do
        // not filter, so this does not cut name resolution.
        name: 'DenyAllOutbound'
        properties: {
          priority: 4096
          direction: 'Outbound'
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
    ], [
      {
        // The jump box: kubectl, `az keyvault secret set`, image pushes, index uploads.
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
    ], [
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

resource nsgBuildAgents 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: 'nsg-${baseName}-build-agents'
  location: location
  tags: tags
  properties: {
    // The jump box has no public IP: SSH only from Azure Bastion.
    securityRules: [
      {
        name: 'AllowSshFromBastion'
        properties: {
          priority: 100
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: bastionSubnetPrefix
          sourcePortRange: '*'
          destinationAddressPrefix: buildAgentsSubnetPrefix
          destinationPortRange: '22'
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

// The rules Azure Bastion requires on its subnet (Microsoft's "NSG access and Azure
// Bastion" list); Bastion refuses a subnet whose NSG lacks them.
resource nsgBastion 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: 'nsg-${baseName}-bastion'
  location: location
  tags: tags
  properties: {
    securityRules: [
      {
        name: 'AllowHttpsInbound'
        properties: {
          priority: 120
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: 'Internet'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '443'
        }
      }
      {
        name: 'AllowGatewayManagerInbound'
        properties: {
          priority: 130
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: 'GatewayManager'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '443'
        }
      }
      {
        name: 'AllowAzureLoadBalancerInbound'
        properties: {
          priority: 140
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: 'AzureLoadBalancer'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '443'
        }
      }
      {
        name: 'AllowBastionHostCommunicationInbound'
        properties: {
          priority: 150
          direction: 'Inbound'
          access: 'Allow'
          protocol: '*'
          sourceAddressPrefix: 'VirtualNetwork'
          sourcePortRange: '*'
          destinationAddressPrefix: 'VirtualNetwork'
          destinationPortRanges: [
            '8080'
            '5701'
          ]
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
      {
        // Only SSH, to the jump box subnet (RDP is not used).
        name: 'AllowSshOutbound'
        properties: {
          priority: 100
          direction: 'Outbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: '*'
          sourcePortRange: '*'
          destinationAddressPrefix: buildAgentsSubnetPrefix
          destinationPortRange: '22'
        }
      }
      {
        name: 'AllowAzureCloudOutbound'
        properties: {
          priority: 110
          direction: 'Outbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: '*'
          sourcePortRange: '*'
          destinationAddressPrefix: 'AzureCloud'
          destinationPortRange: '443'
        }
      }
      {
        name: 'AllowBastionHostCommunicationOutbound'
        properties: {
          priority: 120
          direction: 'Outbound'
          access: 'Allow'
          protocol: '*'
          sourceAddressPrefix: 'VirtualNetwork'
          sourcePortRange: '*'
          destinationAddressPrefix: 'VirtualNetwork'
          destinationPortRanges: [
            '8080'
            '5701'
          ]
        }
      }
      {
        // Session information and certificate validation.
        name: 'AllowHttpOutbound'
        properties: {
          priority: 130
          direction: 'Outbound'
          access: 'Allow'
          protocol: '*'
          sourceAddressPrefix: '*'
          sourcePortRange: '*'
          destinationAddressPrefix: 'Internet'
          destinationPortRange: '80'
        }
      }
      {
        name: 'DenyAllOutbound'
        properties: {
          priority: 4096
          direction: 'Outbound'
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

// ---------------------------------------------------------------- egress route

// Node and jump box egress goes to Azure Firewall (AKS outboundType
// userDefinedRouting); VNet-internal traffic keeps its system routes, which are more
// specific than 0.0.0.0/0.
resource egressRoutes 'Microsoft.Network/routeTables@2024-05-01' = {
  name: 'rt-${baseName}-egress'
  location: location
  tags: tags
  properties: {
    disableBgpRoutePropagation: true
    routes: [
      {
        name: 'default-to-firewall'
        properties: {
          addressPrefix: '0.0.0.0/0'
          nextHopType: 'VirtualAppliance'
          nextHopIpAddress: firewallPrivateIp
        }
      }
    ]
  }
}

// ---------------------------------------------------------------- VNet

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: vnetName
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        vnetAddressPrefix
      ]
    }
    subnets: [
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
          routeTable: { id: egressRoutes.id }
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
      {
        name: buildAgentsSubnetName
        properties: {
          addressPrefix: buildAgentsSubnetPrefix
          networkSecurityGroup: { id: nsgBuildAgents.id }
          routeTable: { id: egressRoutes.id }
        }
      }
      {
        // Azure Firewall accepts no NSG on its subnet.
        name: firewallSubnetName
        properties: {
          addressPrefix: firewallSubnetPrefix
        }
      }
      {
        name: bastionSubnetName
        properties: {
          addressPrefix: bastionSubnetPrefix
          networkSecurityGroup: { id: nsgBastion.id }
        }
      }
    ]
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
output buildAgentsSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnetName, buildAgentsSubnetName)
output firewallSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnetName, firewallSubnetName)
output bastionSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnetName, bastionSubnetName)
output egressRouteTableId string = egressRoutes.id
output egressRouteTableName string = egressRoutes.name

output keyVaultPrivateDnsZoneId string = privateDnsZones[0].id
output openAiPrivateDnsZoneId string = privateDnsZones[1].id
output searchPrivateDnsZoneId string = privateDnsZones[2].id
output acrPrivateDnsZoneId string = privateDnsZones[3].id
