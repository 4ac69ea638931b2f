// Private AKS cluster: Azure CNI Overlay with the Cilium dataplane (enforces the
// NetworkPolicies in infra/kubernetes and infra/spinkube), OIDC issuer + workload
// identity, Key Vault CSI driver add-on, Container insights, egress through Azure
// Firewall (outboundType userDefinedRouting), encryption at host and ephemeral OS
// disks on every node, and the chatgate workload identity with its federated
// credentials and data-plane role assignments.

@description('Azure region.')
param location string

@description('Prefix for resource names.')
param baseName string

@description('VNet name (the cluster identity gets Network Contributor on the node subnet for internal load balancers).')
param vnetName string

@description('AKS node subnet name.')
param nodesSubnetName string

@description('Route table of the node subnet (egress to Azure Firewall); the cluster identity may read and join it.')
param routeTableName string

@description('Kubernetes version; empty = the region default.')
param kubernetesVersion string

@description('System node pool VM size.')
param systemNodeVmSize string

@description('System node pool node count.')
@minValue(1)
param systemNodeCount int

@description('User (application) node pool VM size; chatgate runs here under containerd-shim-spin.')
param appNodeVmSize string

@description('User node pool autoscaler minimum.')
@minValue(1)
param appNodeMinCount int

@description('User node pool autoscaler maximum.')
@minValue(1)
param appNodeMaxCount int

@description('Availability zones for the node pools; empty for regions without zones.')
param zones array

@description('Entra group object ids that get cluster-admin.')
param adminGroupObjectIds array

@description('Cluster egress path. userDefinedRouting: the node subnet\'s route table (network.bicep) sends 0.0.0.0/0 to Azure Firewall (firewall.bicep), as the reference architecture does.')
@allowed([
  'loadBalancer'
  'userDefinedRouting'
  'managedNATGateway'
  'userAssignedNATGateway'
])
param outboundType string

@description('Overlay pod CIDR (not routable in the VNet; must not overlap it).')
param podCidr string

@description('Kubernetes service CIDR.')
param serviceCidr string

@description('kube-dns service IP inside serviceCidr.')
param dnsServiceIp string

@description('Namespace of the chatgate service account.')
param workloadNamespace string

@description('Name of the chatgate service account.')
param workloadServiceAccount string

@description('Azure OpenAI account name (Cognitive Services OpenAI User is granted on it).')
param openAiAccountName string

@description('Key Vault name (Key Vault Secrets User is granted on it).')
param keyVaultName string

@description('Azure AI Search service name (Search Index Data Reader is granted on it).')
param searchName string

@description('Log Analytics workspace resource id for control-plane diagnostic settings and Container insights.')
param workspaceId string

@description('OS disk size in GiB. Ephemeral OS disks live on the VM\'s cache or temp disk, so this must fit there (Standard_D4ds_v5: 150 GiB temp disk).')
param osDiskSizeGB int

@description('Service account of the OpenTelemetry Collector (infra/kubernetes/otel-collector.yaml), federated to the same workload identity so that it reads its Key Vault secret.')
param collectorServiceAccount string

@description('Resource tags.')
param tags object

// Built-in role definition ids (Azure's built-in roles list; OpenAI User and Search Index Data
// Reader checked again for issue 16 item 4 against published role definitions).
var roles = {
  networkContributor: '4d97b98b-1d4f-4787-a291-c67834d212e7'
  cognitiveServicesOpenAiUser: '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  searchIndexDataReader: '1407120a-92aa-4202-b7e9-c0e197c71c8f'
}

// ---------------------------------------------------------------- cluster identity

resource controlPlaneIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${baseName}-aks'
  location: location
  tags: tags
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' existing = {
  name: vnetName
}

resource nodesSubnet 'Microsoft.Network/virtualNetworks/subnets@2024-05-01' existing = {
  parent: vnet
  name: nodesSubnetName
}

// Lets AKS create the internal load balancer frontend (Service chatgate-ilb)
// and join node NICs in the custom subnet.
resource subnetNetworkContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(nodesSubnet.id, controlPlaneIdentity.id, roles.networkContributor)
  scope: nodesSubnet
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.networkContributor)
    principalId: controlPlaneIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource routeTable 'Microsoft.Network/routeTables@2024-05-01' existing = {
  name: routeTableName
}

// AKS checks, and with some network plugins edits, the route table of a
// userDefinedRouting cluster with the cluster identity.
resource routeTableNetworkContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(routeTable.id, controlPlaneIdentity.id, roles.networkContributor)
  scope: routeTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.networkContributor)
    principalId: controlPlaneIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---------------------------------------------------------------- cluster

resource aks 'Microsoft.ContainerService/managedClusters@2024-09-01' = {
  name: 'aks-${baseName}'
  location: location
  tags: tags
  sku: {
    name: 'Base'
    tier: 'Standard'
  }
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${controlPlaneIdentity.id}': {}
    }
  }
  dependsOn: [
    subnetNetworkContributor
    routeTableNetworkContributor
  ]
  properties: {
    kubernetesVersion: empty(kubernetesVersion) ? null : kubernetesVersion
    dnsPrefix: 'aks-${baseName}'
    enableRBAC: true
    disableLocalAccounts: true
    aadProfile: {
      managed: true
      enableAzureRBAC: true
      adminGroupObjectIDs: adminGroupObjectIds
      tenantID: subscription().tenantId
    }
    apiServerAccessProfile: {
      enablePrivateCluster: true
      privateDNSZone: 'system'
      enablePrivateClusterPublicFQDN: false
    }
    networkProfile: {
      networkPlugin: 'azure'
      networkPluginMode: 'overlay'
      networkDataplane: 'cilium'
      networkPolicy: 'cilium'
      podCidr: podCidr
      serviceCidr: serviceCidr
      dnsServiceIP: dnsServiceIp
      outboundType: outboundType
      loadBalancerSku: 'standard'
    }
    oidcIssuerProfile: {
      enabled: true
    }
    securityProfile: {
      workloadIdentity: {
        enabled: true
      }
      imageCleaner: {
        enabled: true
        intervalHours: 168
      }
    }
    autoUpgradeProfile: {
      upgradeChannel: 'patch'
      nodeOSUpgradeChannel: 'NodeImage'
    }
    addonProfiles: {
      // Container insights, authenticated with the add-on's managed identity; what it
      // collects is the data collection rule below.
      omsagent: {
        enabled: true
        config: {
          logAnalyticsWorkspaceResourceID: workspaceId
          useAADAuth: 'true'
        }
      }
      // Secrets Store CSI driver + Azure Key Vault provider
      // (infra/kubernetes/secretproviderclass.yaml).
      azureKeyvaultSecretsProvider: {
        enabled: true
        config: {
          enableSecretRotation: 'true'
          rotationPollInterval: '2m'
        }
      }
      azurepolicy: {
        enabled: true
      }
    }
    agentPoolProfiles: [
      {
        name: 'system'
        mode: 'System'
        type: 'VirtualMachineScaleSets'
        osType: 'Linux'
        osSKU: 'Ubuntu'
        vmSize: systemNodeVmSize
        count: systemNodeCount
        availabilityZones: empty(zones) ? null : zones
        vnetSubnetID: nodesSubnet.id
        // Encryption at host covers the temp disk, caches and the OS disk's host side;
        // needs the subscription feature Microsoft.Compute/EncryptionAtHost registered.
        enableEncryptionAtHost: true
        // Ephemeral OS disks: faster reimaging, no managed OS disk to secure or pay for.
        osDiskType: 'Ephemeral'
        osDiskSizeGB: osDiskSizeGB
        // Stated, not left to the network plugin's default (250 under Overlay).
        maxPods: 110
        nodeTaints: [
          'CriticalAddonsOnly=true:NoSchedule'
        ]
        upgradeSettings: {
          maxSurge: '33%'
        }
      }
      {
        // chatgate runs here. containerd-shim-spin is installed on these nodes
        // by SpinKube's runtime-class-manager (or the kwasm node installer);
        // the `spin` label is what its Shim nodeSelector is expected to match.
        name: 'apps'
        mode: 'User'
        type: 'VirtualMachineScaleSets'
        osType: 'Linux'
        osSKU: 'Ubuntu'
        vmSize: appNodeVmSize
        enableAutoScaling: true
        count: appNodeMinCount
        minCount: appNodeMinCount
        maxCount: appNodeMaxCount
        availabilityZones: empty(zones) ? null : zones
        vnetSubnetID: nodesSubnet.id
        // Encryption at host covers the temp disk, caches and the OS disk's host side;
        // needs the subscription feature Microsoft.Compute/EncryptionAtHost registered.
        enableEncryptionAtHost: true
        // Ephemeral OS disks: faster reimaging, no managed OS disk to secure or pay for.
        osDiskType: 'Ephemeral'
        osDiskSizeGB: osDiskSizeGB
        // Stated, not left to the network plugin's default (250 under Overlay).
        maxPods: 110
        nodeLabels: {
          spin: 'true'
        }
        upgradeSettings: {
          maxSurge: '33%'
        }
      }
    ]
  }
}

// Every AKS resource-log category (control plane, audit, autoscaler, CSI controllers),
// into resource-specific tables. kube-audit is the large one; drop it (keep
// kube-audit-admin, the writes) if the ingestion cost matters more than read audits.
var aksLogCategories = [
  'kube-apiserver'
  'kube-audit'
  'kube-audit-admin'
  'kube-controller-manager'
  'kube-scheduler'
  'cluster-autoscaler'
  'cloud-controller-manager'
  'guard'
  'csi-azuredisk-controller'
  'csi-azurefile-controller'
  'csi-snapshot-controller'
]

resource aksDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: aks
  properties: {
    workspaceId: workspaceId
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      for category in aksLogCategories: {
        category: category
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

// Container insights: what the omsagent add-on collects (the default group: inventory,
// performance, container logs in the ContainerLogV2 schema) and where it goes.
resource containerInsightsRule 'Microsoft.Insights/dataCollectionRules@2022-06-01' = {
  name: 'MSCI-${location}-aks-${baseName}'
  location: location
  tags: tags
  kind: 'Linux'
  properties: {
    dataSources: {
      extensions: [
        {
          name: 'ContainerInsightsExtension'
          extensionName: 'ContainerInsights'
          streams: [
            'Microsoft-ContainerInsights-Group-Default'
          ]
          extensionSettings: {
            dataCollectionSettings: {
              interval: '1m'
              namespaceFilteringMode: 'Off'
              enableContainerLogV2: true
            }
          }
        }
      ]
    }
    destinations: {
      logAnalytics: [
        {
          name: 'workspace'
          workspaceResourceId: workspaceId
        }
      ]
    }
    dataFlows: [
      {
        streams: [
          'Microsoft-ContainerInsights-Group-Default'
        ]
        destinations: [
          'workspace'
        ]
      }
    ]
  }
}

resource containerInsightsAssociation 'Microsoft.Insights/dataCollectionRuleAssociations@2022-06-01' = {
  name: 'ContainerInsightsExtension'
  scope: aks
  properties: {
    description: 'Container insights for the chatgate cluster.'
    dataCollectionRuleId: containerInsightsRule.id
  }
}

// ---------------------------------------------------------------- workload identity

resource workloadIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${baseName}-workload'
  location: location
  tags: tags
}

resource federatedCredential 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = {
  parent: workloadIdentity
  name: 'aks-${workloadNamespace}-${workloadServiceAccount}'
  properties: {
    issuer: aks.properties.oidcIssuerProfile.issuerURL
    subject: 'system:serviceaccount:${workloadNamespace}:${workloadServiceAccount}'
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}

// The collector reads the Application Insights connection string from Key Vault with
// the same identity (Key Vault Secrets User below); federated credentials on one
// identity are created one at a time, hence the dependsOn.
resource collectorFederatedCredential 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials@2023-01-31' = {
  parent: workloadIdentity
  name: 'aks-${workloadNamespace}-${collectorServiceAccount}'
  dependsOn: [
    federatedCredential
  ]
  properties: {
    issuer: aks.properties.oidcIssuerProfile.issuerURL
    subject: 'system:serviceaccount:${workloadNamespace}:${collectorServiceAccount}'
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}

resource openAi 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: openAiAccountName
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource search 'Microsoft.Search/searchServices@2023-11-01' existing = {
  name: searchName
}

resource openAiUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(openAi.id, workloadIdentity.id, roles.cognitiveServicesOpenAiUser)
  scope: openAi
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesOpenAiUser)
    principalId: workloadIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource keyVaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, workloadIdentity.id, roles.keyVaultSecretsUser)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: workloadIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource searchIndexDataReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(search.id, workloadIdentity.id, roles.searchIndexDataReader)
  scope: search
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.searchIndexDataReader)
    principalId: workloadIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

output aksName string = aks.name
output aksId string = aks.id
output oidcIssuerUrl string = aks.properties.oidcIssuerProfile.issuerURL
output privateFqdn string = aks.properties.privateFQDN
output kubeletIdentityObjectId string = aks.properties.identityProfile.kubeletidentity.objectId
output workloadIdentityClientId string = workloadIdentity.properties.clientId
output workloadIdentityPrincipalId string = workloadIdentity.properties.principalId
