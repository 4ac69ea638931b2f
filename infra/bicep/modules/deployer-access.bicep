// What the person (or group, or pipeline) deploying chatgate needs inside the private
// network, granted on the resources themselves rather than the subscription: the
// cluster's local accounts are disabled and the vault, registry and search service
// use Azure RBAC, so without these roles the deploy steps after the first pass fail.

@description('Object id of the deployer (a group is best).')
param principalId string

@description('Kind of principal.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param principalType string

@description('AKS cluster name.')
param aksName string

@description('Key Vault name.')
param keyVaultName string

@description('Container registry name.')
param registryName string

@description('Azure AI Search service name.')
param searchName string

@description('Jump box VM name; empty when no jump box is deployed.')
param jumpboxVmName string

// Built-in role definition ids (Microsoft's "Azure built-in roles").
var roles = {
  aksRbacClusterAdmin: 'b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  keyVaultCertificatesOfficer: 'a4417e6f-fecd-4de8-b567-7b0420556985'
  acrPush: '8311e382-0749-4cb8-b61a-304f252e45ec'
  searchServiceContributor: '7ca78c08-252a-4471-8644-bb5ff32d4ba0'
  searchIndexDataContributor: '8ebe5a00-799e-43f5-93ac-243d3dce84a7'
  virtualMachineAdministratorLogin: '1c0163c0-47e6-4577-8991-ea5c82e286e4'
  reader: 'acdd72a7-3385-48ef-bd42-f606fba81ae7'
}

resource aks 'Microsoft.ContainerService/managedClusters@2024-09-01' existing = {
  name: aksName
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = {
  name: registryName
}

resource search 'Microsoft.Search/searchServices@2023-11-01' existing = {
  name: searchName
}

resource jumpbox 'Microsoft.Compute/virtualMachines@2024-07-01' existing = if (!empty(jumpboxVmName)) {
  name: empty(jumpboxVmName) ? 'none' : jumpboxVmName
}

// kubectl / helm against the private API server (Azure RBAC for Kubernetes).
resource clusterAdmin 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(aks.id, principalId, roles.aksRbacClusterAdmin)
  scope: aks
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.aksRbacClusterAdmin)
    principalId: principalId
    principalType: principalType
  }
}

// auth-api-keys, auth-jwks (az keyvault secret set).
resource secretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, principalId, roles.keyVaultSecretsOfficer)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: principalId
    principalType: principalType
  }
}

// The public TLS certificate and chatgate-internal-tls (az keyvault certificate import/create).
resource certificatesOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, principalId, roles.keyVaultCertificatesOfficer)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultCertificatesOfficer)
    principalId: principalId
    principalType: principalType
  }
}

// buildah push of the gateway image and the mirrored collector.
resource acrPush 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, principalId, roles.acrPush)
  scope: registry
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.acrPush)
    principalId: principalId
    principalType: principalType
  }
}

// Creating the index (control plane) and uploading documents (data plane).
resource searchContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(search.id, principalId, roles.searchServiceContributor)
  scope: search
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.searchServiceContributor)
    principalId: principalId
    principalType: principalType
  }
}

resource searchDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(search.id, principalId, roles.searchIndexDataContributor)
  scope: search
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.searchIndexDataContributor)
    principalId: principalId
    principalType: principalType
  }
}

// Entra ID sign-in to the jump box through Bastion; Bastion also needs Reader on the VM,
// its NIC and the Bastion host, given here on the resource group.
resource jumpboxLogin 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(jumpboxVmName)) {
  name: guid(resourceGroup().id, jumpboxVmName, principalId, roles.virtualMachineAdministratorLogin)
  scope: jumpbox
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.virtualMachineAdministratorLogin)
    principalId: principalId
    principalType: principalType
  }
}

resource reader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(jumpboxVmName)) {
  name: guid(resourceGroup().id, principalId, roles.reader)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.reader)
    principalId: principalId
    principalType: principalType
  }
}
