// Azure Firewall (Standard) with a firewall policy: the only way out to the internet for
// the AKS nodes and the jump box (route table rt-<base>-egress in network.bicep; AKS
// outboundType userDefinedRouting). Everything not allowed here is denied.
//
// The allow-list follows Microsoft's "Outbound network and FQDN rules for AKS clusters":
// the FQDN tag AzureKubernetesService covers the required cluster FQDNs (MCR, the
// management plane, login.microsoftonline.com, packages.aks.azure.com, ...). Private
// endpoints (registry, Key Vault, OpenAI, Search) are reached inside the VNet and need
// no rule here. The API server tunnel rules of a public cluster (UDP 1194, TCP 9000 to
// AzureCloud) are left out: the cluster is private and reaches its API server over
// Private Link.

@description('Azure region.')
param location string

@description('Prefix for resource names.')
param baseName string

@description('AzureFirewallSubnet resource id.')
param firewallSubnetId string

@description('AKS node subnet: the source of the cluster rules.')
param aksNodesSubnetPrefix string

@description('Jump box subnet: the source of the operator tooling rules.')
param buildAgentsSubnetPrefix string

@description('Registries the nodes may pull from besides the private ACR (reached through its private endpoint) and MCR (in the AzureKubernetesService tag). Empty by default: mirror images into the ACR instead.')
param extraRegistryFqdns array

@description('FQDNs the jump box may reach for its tooling (az CLI, kubectl, kubelogin, helm, OS packages).')
param jumpboxFqdns array

@description('Availability zones for the firewall and its public IP; empty for regions without zones.')
param zones array

@description('Log Analytics workspace resource id for diagnostic settings.')
param workspaceId string

@description('Resource tags.')
param tags object

resource publicIp 'Microsoft.Network/publicIPAddresses@2024-05-01' = {
  name: 'pip-afw-${baseName}'
  location: location
  tags: tags
  zones: zones
  sku: {
    name: 'Standard'
    tier: 'Regional'
  }
  properties: {
    publicIPAllocationMethod: 'Static'
    publicIPAddressVersion: 'IPv4'
  }
}

resource policy 'Microsoft.Network/firewallPolicies@2024-05-01' = {
  name: 'afwp-${baseName}'
  location: location
  tags: tags
  properties: {
    sku: {
      tier: 'Standard'
    }
    // Known-malicious addresses and domains are dropped, not only logged.
    threatIntelMode: 'Deny'
    // FQDNs in network rules (ntp.ubuntu.com) are resolved by the firewall.
    dnsSettings: {
      enableProxy: true
    }
  }
}

// Azure Monitor endpoints Container insights and the OpenTelemetry Collector send to
// (Microsoft's AKS egress list, "Azure Monitor for containers"; App Insights ingestion).
var monitorFqdns = [
  'dc.services.visualstudio.com'
  '*.ods.opinsights.azure.com'
  '*.oms.opinsights.azure.com'
  '*.monitoring.azure.com'
  'global.handler.control.monitor.azure.com'
  '${location}.handler.control.monitor.azure.com'
  '*.ingest.monitor.azure.com'
  '*.in.applicationinsights.azure.com'
]

resource rules 'Microsoft.Network/firewallPolicies/ruleCollectionGroups@2024-05-01' = {
  parent: policy
  name: 'chatgate-egress'
  properties: {
    priority: 200
    ruleCollections: concat([
      {
        ruleCollectionType: 'FirewallPolicyFilterRuleCollection'
        name: 'aks-network'
        priority: 100
        action: {
          type: 'Allow'
        }
        rules: [
          {
            ruleType: 'NetworkRule'
            name: 'ntp'
            ipProtocols: [
              'UDP'
            ]
            sourceAddresses: [
              aksNodesSubnetPrefix
              buildAgentsSubnetPrefix
            ]
            destinationFqdns: [
              'ntp.ubuntu.com'
            ]
            destinationPorts: [
              '123'
            ]
          }
        ]
      }
      {
        ruleCollectionType: 'FirewallPolicyFilterRuleCollection'
        name: 'aks-application'
        priority: 200
        action: {
          type: 'Allow'
        }
        rules: concat([
          {
            ruleType: 'ApplicationRule'
            name: 'aks-required'
            protocols: [
              {
                protocolType: 'Https'
                port: 443
              }
              {
                protocolType: 'Http'
                port: 80
              }
            ]
            sourceAddresses: [
              aksNodesSubnetPrefix
            ]
            fqdnTags: [
              'AzureKubernetesService'
            ]
          }
          {
            ruleType: 'ApplicationRule'
            name: 'azure-monitor'
            protocols: [
              {
                protocolType: 'Https'
                port: 443
              }
            ]
            sourceAddresses: [
              aksNodesSubnetPrefix
            ]
            targetFqdns: monitorFqdns
          }
        ], empty(extraRegistryFqdns) ? [] : [
          {
            ruleType: 'ApplicationRule'
            name: 'extra-registries'
            protocols: [
              {
                protocolType: 'Https'
                port: 443
              }
            ]
            sourceAddresses: [
              aksNodesSubnetPrefix
            ]
            targetFqdns: extraRegistryFqdns
          }
        ])
      }
    ], empty(jumpboxFqdns) ? [] : [
      {
        ruleCollectionType: 'FirewallPolicyFilterRuleCollection'
        name: 'jumpbox-application'
        priority: 300
        action: {
          type: 'Allow'
        }
        rules: [
          {
            ruleType: 'ApplicationRule'
            name: 'operator-tooling'
            protocols: [
              {
                protocolType: 'Https'
                port: 443
              }
              {
                protocolType: 'Http'
                port: 80
              }
            ]
            sourceAddresses: [
              buildAgentsSubnetPrefix
            ]
            targetFqdns: jumpboxFqdns
          }
        ]
      }
    ])
  }
}

resource firewall 'Microsoft.Network/azureFirewalls@2024-05-01' = {
  name: 'afw-${baseName}'
  location: location
  tags: tags
  zones: zones
  // A policy being written cannot be attached; the rules must exist before the nodes
  // need egress.
  dependsOn: [
    rules
  ]
  properties: {
    sku: {
      name: 'AZFW_VNet'
      tier: 'Standard'
    }
    firewallPolicy: {
      id: policy.id
    }
    ipConfigurations: [
      {
        name: 'ipconfig'
        properties: {
          subnet: {
            id: firewallSubnetId
          }
          publicIPAddress: {
            id: publicIp.id
          }
        }
      }
    ]
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: firewall
  properties: {
    workspaceId: workspaceId
    // Resource-specific tables (AZFWApplicationRule, AZFWNetworkRule, AZFWDnsQuery, ...).
    logAnalyticsDestinationType: 'Dedicated'
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

output firewallName string = firewall.name
output privateIp string = firewall.properties.ipConfigurations[0].properties.privateIPAddress
output publicIpAddress string = publicIp.properties.ipAddress
