// Private AKS cluster for SpinKube: Azure CNI Overlay with the Cilium
// dataplane (enforces the NetworkPolicies in infra/spinkube), OIDC issuer +
// workload identity, Key Vault CSI driver add-on, and the chatgate workload
// identity with its federated credential and data-plane role assignments.

@description('Azure region.')
param location string

@description('Prefix for resource names.')
param baseName string

@description('VNet name (the cluster identity gets Network Contributor on the node subnet for internal load balancers).')
param vnetName string

@description('AKS node subnet name.')
param nodesSubnetName string

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

@description('Cluster egress path. The reference architecture routes egress through Azure Firewall (userDefinedRouting + a route table on the node subnet, not created here).')
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

@description('Log Analytics workspace resource id for control-plane diagnostic settings.')
param workspaceId string

@description('Resource tags.')
param tags object

// Built-in role definition ids.
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
      // Secrets Store CSI driver + Azure Key Vault provider
      // (infra/spinkube/secretproviderclass.yaml).
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

resource aksDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: aks
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'kube-audit-admin'
        enabled: true
      }
      {
        category: 'guard'
        enabled: true
      }
      {
        category: 'cluster-autoscaler'
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
