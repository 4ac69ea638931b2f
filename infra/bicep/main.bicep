// chatgate: private-network landing zone for the Spin/SpinKube rebuild of the
// "baseline OpenAI end-to-end chat" reference architecture.
//
//   internet -> Application Gateway WAF_v2 (snet-appgw) --HTTPS-->
//            -> internal LB (Service chatgate-ilb, 443) -> chatgate pods on private AKS (snet-aks-nodes)
//            -> private endpoints (snet-private-endpoints): Azure OpenAI, Azure AI Search, Key Vault, ACR
//   node and jump box egress -> route table -> Azure Firewall (AzureFirewallSubnet, allow-list)
//   operators -> Azure Bastion (AzureBastionSubnet) -> jump box (snet-build-agents)
//
// Deploy at resource-group scope:
//   az deployment group create -g <rg> -n chatgate -f infra/bicep/main.bicep -p infra/bicep/main.bicepparam
//
// NOT compiled on the machine this was written on (no az/bicep CLI there).
// Run `az bicep build -f infra/bicep/main.bicep` and a what-if before the first deployment.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------- general

@description('Azure region for all resources.')
param location string = resourceGroup().location

@description('Short lowercase prefix for resource names (letters and digits, 3-12 chars).')
@minLength(3)
@maxLength(12)
param baseName string = 'chatgate'

@description('Tags applied to every resource.')
param tags object = {
  workload: 'chatgate'
}

// ---------------------------------------------------------------- network

@description('VNet address space.')
param vnetAddressPrefix string = '10.10.0.0/16'

@description('Application Gateway subnet. Must match the ingress ipBlock in infra/kubernetes/networkpolicies.yaml and infra/spinkube/networkpolicies.yaml.')
param appGwSubnetPrefix string = '10.10.1.0/24'

@description('AKS node subnet (nodes + internal load balancer frontend).')
param aksNodesSubnetPrefix string = '10.10.2.0/24'

@description('Private endpoint subnet. Must match the egress ipBlock in infra/kubernetes/networkpolicies.yaml and infra/spinkube/networkpolicies.yaml.')
param privateEndpointsSubnetPrefix string = '10.10.3.0/24'

@description('Jump box / self-hosted build agent subnet.')
param buildAgentsSubnetPrefix string = '10.10.4.0/24'

@description('AzureFirewallSubnet (/26 or larger).')
param firewallSubnetPrefix string = '10.10.5.0/26'

@description('Private IP Azure gives the firewall: the first usable address of firewallSubnetPrefix (.4). The node route table points here; the output firewallPrivateIp shows what the firewall really got.')
param firewallPrivateIp string = '10.10.5.4'

@description('AzureBastionSubnet (/26 or larger).')
param bastionSubnetPrefix string = '10.10.6.0/26'

@description('Registries the nodes may pull from through the firewall besides the private ACR and MCR, e.g. [\'quay.io\', \'*.quay.io\'] for SpinKube\'s charts. Empty: mirror images into the ACR.')
param firewallExtraRegistryFqdns array = []

@description('FQDNs the jump box may reach through the firewall: OS packages, the az CLI, kubectl, kubelogin, helm, Entra sign-in.')
param jumpboxAllowedFqdns array = [
  'azure.archive.ubuntu.com'
  'archive.ubuntu.com'
  'security.ubuntu.com'
  'packages.microsoft.com'
  'aka.ms'
  'azurecliprod.blob.core.windows.net'
  'management.azure.com'
  'login.microsoftonline.com'
  'graph.microsoft.com'
  'pas.windows.net'
  'dl.k8s.io'
  'cdn.dl.k8s.io'
  'get.helm.sh'
  'github.com'
  'objects.githubusercontent.com'
  'release-assets.githubusercontent.com'
  'mcr.microsoft.com'
  '*.data.mcr.microsoft.com'
]

@description('Deploy Azure Bastion and the jump box VM (the way into the private network for kubectl, Key Vault data-plane writes and image pushes).')
param deployJumpbox bool = true

@description('Jump box VM size (must support encryption at host and Trusted Launch).')
param jumpboxVmSize string = 'Standard_D2ds_v5'

@description('Local administrator of the jump box.')
param jumpboxAdminUsername string = 'azureuser'

@description('SSH public key of that administrator (main.bicepparam reads CHATGATE_JUMPBOX_SSH_KEY). Entra ID sign-in works besides it.')
param jumpboxAdminSshPublicKey string = ''

@description('Source allowed to reach the gateway on 443: a service tag (Internet) or a CIDR.')
param appGwAllowedSourceAddressPrefix string = 'Internet'

// ---------------------------------------------------------------- application gateway

@description('Versionless Key Vault secret id of the PFX/PEM TLS certificate for the HTTPS listener, e.g. https://kv-chatgate-abc123.vault.azure.net/secrets/chatgate-tls. Leave empty on the first run: the gateway is skipped until the certificate has been imported into the (private) vault.')
param sslCertKeyVaultSecretId string = ''

@description('Optional listener host name (SNI), e.g. chat.contoso.com.')
param appGwListenerHostName string = ''

@description('Frontend the HTTPS listener binds to.')
@allowed([
  'Public'
  'Private'
])
param appGwListenerFrontend string = 'Public'

@description('Static private frontend IP of the gateway (inside appGwSubnetPrefix).')
param appGwPrivateFrontendIp string = '10.10.1.10'

@description('IP of the AKS internal load balancer = loadBalancerIP of Service chatgate-ilb (infra/kubernetes/service-ilb.yaml); inside aksNodesSubnetPrefix.')
param aksIngressLoadBalancerIp string = '10.10.2.250'

@description('Host name the gateway uses towards the pods (Host header, SNI, and the name it checks in their certificate): the subject of the Key Vault certificate chatgate-internal-tls.')
param backendHostName string = 'chatgate.internal'

@description('Base64 DER of the root the pods\' certificate chains to (for a self-signed chatgate-internal-tls, that certificate without its key). Empty: only well-known CAs.')
param backendTrustedRootCertificate string = ''

@description('Unauthenticated health path served by chatgate, probed by the gateway.')
param backendHealthProbePath string = '/healthz'

@description('Gateway -> backend timeout in seconds.')
param backendRequestTimeoutSeconds int = 120

@description('WAF managed rule set: OWASP CRS 3.2 or Microsoft Default Rule Set 2.1.')
@allowed([
  'OWASP_3.2'
  'Microsoft_DefaultRuleSet_2.1'
])
param wafManagedRuleSet string = 'Microsoft_DefaultRuleSet_2.1'

@description('Last segments of the JSON argument names that carry prompts (messages[*].content, content[*].text, tool_calls[*].function.arguments, input, instructions, prompt, tool descriptions; components/waf/rules/chat-policy.conf). Excluded from the WAF\'s injection rule groups only.')
param wafPromptFieldSuffixes array = [
  'content'
  'text'
  'arguments'
  'output'
  'input'
  'instructions'
  'prompt'
  'description'
]

@description('Gateway autoscale minimum instances.')
param appGwMinCapacity int = 2

@description('Gateway autoscale maximum instances.')
param appGwMaxCapacity int = 10

@description('Availability zones for the gateway and AKS node pools. Use [] in regions without zones.')
param zones array = [
  '1'
  '2'
  '3'
]

// ---------------------------------------------------------------- azure openai

@description('Disable API-key auth on Azure OpenAI (Entra ID only). Secure default; see infra/README.md for how the Wasm component gets a token.')
param openAiDisableLocalAuth bool = true

@description('Chat model.')
param openAiModelName string = 'gpt-4o-mini'

@description('Chat model version.')
param openAiModelVersion string = '2024-07-18'

@description('Deployment name the app calls (Spin variable openai_model, with openai_api_flavor = azure).')
param openAiDeploymentName string = 'gpt-4o-mini'

@description('Deployment SKU. Standard keeps processing in the region; GlobalStandard has the widest availability.')
@allowed([
  'GlobalStandard'
  'DataZoneStandard'
  'Standard'
])
param openAiDeploymentSkuName string = 'GlobalStandard'

@description('Deployment capacity in thousands of tokens per minute.')
param openAiDeploymentCapacity int = 10

// ---------------------------------------------------------------- azure ai search

@description('Azure AI Search SKU (basic or higher for private endpoints).')
@allowed([
  'basic'
  'standard'
  'standard2'
  'standard3'
])
param searchSku string = 'standard'

@description('Azure AI Search replicas (3 for the read/write SLA, as the reference architecture).')
param searchReplicaCount int = 3

@description('Name of the Azure AI Search index the app queries (Spin variable azure_search_index). Bicep does not create the index: its schema and documents are data-plane.')
param searchIndexName string = 'chatgate'

@description('Disable API-key auth on Azure AI Search (Entra ID only).')
param searchDisableLocalAuth bool = true

// ---------------------------------------------------------------- aks

@description('Kubernetes version; empty = region default.')
param kubernetesVersion string = ''

@description('System pool VM size.')
param aksSystemNodeVmSize string = 'Standard_D4ds_v5'

@description('System pool node count (3 spreads over zones).')
param aksSystemNodeCount int = 3

@description('Application pool VM size.')
param aksAppNodeVmSize string = 'Standard_D4ds_v5'

@description('Application pool autoscaler minimum.')
param aksAppNodeMinCount int = 2

@description('Application pool autoscaler maximum.')
param aksAppNodeMaxCount int = 5

@description('Entra group object ids granted cluster-admin.')
param aksAdminGroupObjectIds array = []

@description('Node OS disk size in GiB; ephemeral, so it must fit the VM size\'s cache or temp disk (Standard_D4ds_v5: 150 GiB).')
param aksOsDiskSizeGB int = 128

@description('Cluster egress. userDefinedRouting: through Azure Firewall (modules/firewall.bicep) by the node subnet\'s route table, as the reference architecture does.')
@allowed([
  'loadBalancer'
  'userDefinedRouting'
  'managedNATGateway'
  'userAssignedNATGateway'
])
param aksOutboundType string = 'userDefinedRouting'

@description('Overlay pod CIDR.')
param aksPodCidr string = '192.168.0.0/16'

@description('Kubernetes service CIDR.')
param aksServiceCidr string = '172.16.0.0/16'

@description('kube-dns IP (inside aksServiceCidr).')
param aksDnsServiceIp string = '172.16.0.10'

@description('Namespace of the chatgate workload (infra/kubernetes/namespace.yaml).')
param workloadNamespace string = 'chatgate'

@description('Service account of the chatgate workload (infra/kubernetes/serviceaccount.yaml).')
param workloadServiceAccount string = 'chatgate'

@description('Service account of the OpenTelemetry Collector (infra/kubernetes/otel-collector.yaml).')
param collectorServiceAccount string = 'otel-collector'

// ---------------------------------------------------------------- deployer

@description('Object id of whoever runs the deploy steps after Bicep (a group is best): gets AKS RBAC Cluster Admin, Key Vault Secrets Officer and Certificates Officer, AcrPush, Search Service and Index Data Contributor, and jump box sign-in. Empty: no roles granted.')
param deployerPrincipalId string = ''

@description('Kind of deployerPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param deployerPrincipalType string = 'Group'

// ---------------------------------------------------------------- monitoring

@description('Log Analytics retention in days.')
param logRetentionInDays int = 30

@description('Disable local (instrumentation key) auth on Application Insights.')
param appInsightsDisableLocalAuth bool = false

// ---------------------------------------------------------------- names

var suffix = take(uniqueString(subscription().id, resourceGroup().id, baseName), 6)
var keyVaultName = 'kv-${baseName}-${suffix}'
var openAiAccountName = 'oai-${baseName}-${suffix}'
var searchName = 'srch-${baseName}-${suffix}'
var registryName = 'acr${baseName}${suffix}'
var deployAppGateway = !empty(sslCertKeyVaultSecretId)

var wafRuleSets = {
  'OWASP_3.2': {
    type: 'OWASP'
    version: '3.2'
  }
  'Microsoft_DefaultRuleSet_2.1': {
    type: 'Microsoft_DefaultRuleSet'
    version: '2.1'
  }
}

// ---------------------------------------------------------------- modules

module network 'modules/network.bicep' = {
  name: 'chatgate-network'
  params: {
    location: location
    baseName: baseName
    vnetAddressPrefix: vnetAddressPrefix
    appGwSubnetPrefix: appGwSubnetPrefix
    aksNodesSubnetPrefix: aksNodesSubnetPrefix
    privateEndpointsSubnetPrefix: privateEndpointsSubnetPrefix
    buildAgentsSubnetPrefix: buildAgentsSubnetPrefix
    firewallSubnetPrefix: firewallSubnetPrefix
    bastionSubnetPrefix: bastionSubnetPrefix
    firewallPrivateIp: firewallPrivateIp
    podCidr: aksPodCidr
    appGwAllowedSourceAddressPrefix: appGwAllowedSourceAddressPrefix
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'chatgate-monitoring'
  params: {
    location: location
    baseName: baseName
    retentionInDays: logRetentionInDays
    appInsightsDisableLocalAuth: appInsightsDisableLocalAuth
    tags: tags
  }
}

module firewall 'modules/firewall.bicep' = {
  name: 'chatgate-firewall'
  params: {
    location: location
    baseName: baseName
    firewallSubnetId: network.outputs.firewallSubnetId
    aksNodesSubnetPrefix: aksNodesSubnetPrefix
    buildAgentsSubnetPrefix: buildAgentsSubnetPrefix
    extraRegistryFqdns: firewallExtraRegistryFqdns
    jumpboxFqdns: jumpboxAllowedFqdns
    zones: zones
    workspaceId: monitoring.outputs.workspaceId
    tags: tags
  }
}

module jumpbox 'modules/jumpbox.bicep' = if (deployJumpbox) {
  name: 'chatgate-jumpbox'
  // Its egress (package installs, the Entra sign-in extension) needs the firewall.
  dependsOn: [
    firewall
  ]
  params: {
    location: location
    baseName: baseName
    bastionSubnetId: network.outputs.bastionSubnetId
    jumpboxSubnetId: network.outputs.buildAgentsSubnetId
    vmSize: jumpboxVmSize
    adminUsername: jumpboxAdminUsername
    adminSshPublicKey: jumpboxAdminSshPublicKey
    zone: empty(zones) ? '' : zones[0]
    workspaceId: monitoring.outputs.workspaceId
    tags: tags
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'chatgate-keyvault'
  params: {
    location: location
    keyVaultName: keyVaultName
    privateEndpointsSubnetId: network.outputs.privateEndpointsSubnetId
    privateDnsZoneId: network.outputs.keyVaultPrivateDnsZoneId
    workspaceId: monitoring.outputs.workspaceId
    tags: tags
  }
}

module openAi 'modules/openai.bicep' = {
  name: 'chatgate-openai'
  params: {
    location: location
    accountName: openAiAccountName
    disableLocalAuth: openAiDisableLocalAuth
    deploymentName: openAiDeploymentName
    modelName: openAiModelName
    modelVersion: openAiModelVersion
    deploymentSkuName: openAiDeploymentSkuName
    deploymentCapacity: openAiDeploymentCapacity
    privateEndpointsSubnetId: network.outputs.privateEndpointsSubnetId
    privateDnsZoneId: network.outputs.openAiPrivateDnsZoneId
    workspaceId: monitoring.outputs.workspaceId
    tags: tags
  }
}

module search 'modules/search.bicep' = {
  name: 'chatgate-search'
  params: {
    location: location
    searchName: searchName
    skuName: searchSku
    replicaCount: searchReplicaCount
    disableLocalAuth: searchDisableLocalAuth
    privateEndpointsSubnetId: network.outputs.privateEndpointsSubnetId
    privateDnsZoneId: network.outputs.searchPrivateDnsZoneId
    workspaceId: monitoring.outputs.workspaceId
    tags: tags
  }
}

module aks 'modules/aks.bicep' = {
  name: 'chatgate-aks'
  // With userDefinedRouting the nodes' first pulls go through the firewall: its
  // allow-list has to be in place before the cluster is created.
  dependsOn: [
    firewall
  ]
  params: {
    location: location
    baseName: baseName
    vnetName: network.outputs.vnetName
    nodesSubnetName: network.outputs.aksNodesSubnetName
    routeTableName: network.outputs.egressRouteTableName
    kubernetesVersion: kubernetesVersion
    systemNodeVmSize: aksSystemNodeVmSize
    systemNodeCount: aksSystemNodeCount
    appNodeVmSize: aksAppNodeVmSize
    appNodeMinCount: aksAppNodeMinCount
    appNodeMaxCount: aksAppNodeMaxCount
    zones: zones
    adminGroupObjectIds: aksAdminGroupObjectIds
    outboundType: aksOutboundType
    podCidr: aksPodCidr
    serviceCidr: aksServiceCidr
    dnsServiceIp: aksDnsServiceIp
    workloadNamespace: workloadNamespace
    workloadServiceAccount: workloadServiceAccount
    collectorServiceAccount: collectorServiceAccount
    osDiskSizeGB: aksOsDiskSizeGB
    openAiAccountName: openAi.outputs.accountName
    keyVaultName: keyVault.outputs.keyVaultName
    searchName: search.outputs.searchName
    workspaceId: monitoring.outputs.workspaceId
    tags: tags
  }
}

module registry 'modules/acr.bicep' = {
  name: 'chatgate-registry'
  params: {
    location: location
    registryName: registryName
    privateEndpointsSubnetId: network.outputs.privateEndpointsSubnetId
    privateDnsZoneId: network.outputs.acrPrivateDnsZoneId
    kubeletIdentityObjectId: aks.outputs.kubeletIdentityObjectId
    zoneRedundant: !empty(zones)
    untaggedRetentionDays: 30
    workspaceId: monitoring.outputs.workspaceId
    tags: tags
  }
}

module deployerAccess 'modules/deployer-access.bicep' = if (!empty(deployerPrincipalId)) {
  name: 'chatgate-deployer-access'
  params: {
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
    aksName: aks.outputs.aksName
    keyVaultName: keyVault.outputs.keyVaultName
    registryName: registry.outputs.registryName
    searchName: search.outputs.searchName
    jumpboxVmName: deployJumpbox ? jumpbox.outputs.vmName : ''
  }
}

// ---------------------------------------------------------------- Key Vault seeding
// What the deployment itself knows goes into the vault now, so the CSI driver finds
// every object the SecretProviderClasses list. With local auth disabled (the default)
// the OpenAI and Search secrets hold a marker instead of a key: the app must then
// authenticate with Entra ID (infra/README.md, "Keyless").

resource openAiAccount 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: openAiAccountName
}

resource searchService 'Microsoft.Search/searchServices@2023-11-01' existing = {
  name: searchName
}

var localAuthDisabledMarker = 'local-auth-disabled'

module appInsightsSecret 'modules/keyvault-secret.bicep' = {
  name: 'chatgate-secret-appinsights'
  params: {
    keyVaultName: keyVault.outputs.keyVaultName
    secretName: 'appinsights-connection-string'
    secretValue: monitoring.outputs.appInsightsConnectionString
    contentType: 'Application Insights connection string (OpenTelemetry Collector)'
  }
}

module openAiKeySecret 'modules/keyvault-secret.bicep' = {
  name: 'chatgate-secret-openai-key'
  dependsOn: [
    openAi
  ]
  params: {
    keyVaultName: keyVault.outputs.keyVaultName
    secretName: 'openai-api-key'
    // The ternary evaluates listKeys only when local auth is on.
    secretValue: openAiDisableLocalAuth ? localAuthDisabledMarker : openAiAccount.listKeys().key1
    contentType: openAiDisableLocalAuth ? 'marker: Azure OpenAI local auth is disabled' : 'Azure OpenAI api-key'
  }
}

module searchKeySecret 'modules/keyvault-secret.bicep' = {
  name: 'chatgate-secret-search-key'
  dependsOn: [
    search
  ]
  params: {
    keyVaultName: keyVault.outputs.keyVaultName
    secretName: 'azure-search-api-key'
    // A query key: the app only reads the index.
    secretValue: searchDisableLocalAuth ? localAuthDisabledMarker : searchService.listQueryKeys().value[0].key
    contentType: searchDisableLocalAuth ? 'marker: Azure AI Search local auth is disabled' : 'Azure AI Search query key'
  }
}

module appGateway 'modules/appgateway.bicep' = if (deployAppGateway) {
  name: 'chatgate-appgateway'
  params: {
    location: location
    baseName: baseName
    appGwSubnetId: network.outputs.appGwSubnetId
    privateFrontendIp: appGwPrivateFrontendIp
    listenerFrontend: appGwListenerFrontend
    sslCertKeyVaultSecretId: sslCertKeyVaultSecretId
    keyVaultName: keyVault.outputs.keyVaultName
    listenerHostName: appGwListenerHostName
    backendIpAddress: aksIngressLoadBalancerIp
    healthProbePath: backendHealthProbePath
    backendHostName: backendHostName
    backendTrustedRootCertificate: backendTrustedRootCertificate
    backendRequestTimeoutSeconds: backendRequestTimeoutSeconds
    wafRuleSetType: wafRuleSets[wafManagedRuleSet].type
    wafRuleSetVersion: wafRuleSets[wafManagedRuleSet].version
    wafPromptFieldSuffixes: wafPromptFieldSuffixes
    minCapacity: appGwMinCapacity
    maxCapacity: appGwMaxCapacity
    zones: zones
    workspaceId: monitoring.outputs.workspaceId
    tags: tags
  }
}

// ---------------------------------------------------------------- outputs

@description('Tenant of the deployment (SecretProviderClass tenantId, ServiceAccount annotation).')
output tenantId string = subscription().tenantId

@description('Azure OpenAI endpoint as the account reports it (with a trailing slash); resolves to the private endpoint inside the VNet.')
output openAiEndpoint string = openAi.outputs.endpoint

@description('Spin variable openai_origin (ConfigMap chatgate-config): the same host without the trailing slash. It is also what allowed_outbound_hosts of the chat component resolves to.')
output openAiOrigin string = openAi.outputs.origin

@description('Azure OpenAI deployment name (Spin variable openai_model, with openai_api_flavor = azure).')
output openAiDeploymentName string = openAi.outputs.deploymentName

@description('Azure AI Search endpoint (Spin variable azure_search_origin, read by retrieval-azure-search once spin.toml wires it as chat\'s retriever).')
output searchEndpoint string = search.outputs.endpoint

@description('Azure AI Search index name (Spin variable azure_search_index).')
output searchIndexName string = searchIndexName

@description('Container registry login server (the image references the overlay pins by digest).')
output acrLoginServer string = registry.outputs.loginServer

@description('Private IP the firewall got; must equal the parameter firewallPrivateIp, the next hop of the node route table.')
output firewallPrivateIp string = firewall.outputs.privateIp

@description('Public IP the nodes and the jump box leave the internet from (allow it where an outside service needs to know).')
output egressPublicIp string = firewall.outputs.publicIpAddress

@description('Bastion host name (az network bastion ssh --name ...); empty without the jump box.')
output bastionName string = deployJumpbox ? jumpbox.outputs.bastionName : ''

@description('Jump box VM resource id (az network bastion ssh --target-resource-id ...); empty without the jump box.')
output jumpboxVmId string = deployJumpbox ? jumpbox.outputs.vmId : ''

@description('Host name the gateway expects in the pods\' certificate (subject of the Key Vault certificate chatgate-internal-tls).')
output backendHostName string = backendHostName

@description('Key Vault name (SecretProviderClass keyvaultName).')
output keyVaultName string = keyVault.outputs.keyVaultName

@description('Key Vault URI.')
output keyVaultUri string = keyVault.outputs.keyVaultUri

@description('AKS cluster name.')
output aksName string = aks.outputs.aksName

@description('AKS private API server FQDN.')
output aksPrivateFqdn string = aks.outputs.privateFqdn

@description('AKS OIDC issuer URL.')
output aksOidcIssuerUrl string = aks.outputs.oidcIssuerUrl

@description('Client id of the chatgate workload identity (ServiceAccount annotation, SecretProviderClass clientID).')
output workloadIdentityClientId string = aks.outputs.workloadIdentityClientId

@description('Kubelet identity object id (holds AcrPull on the registry).')
output kubeletIdentityObjectId string = aks.outputs.kubeletIdentityObjectId

@description('Internal LB IP the gateway targets (Service chatgate-ilb loadBalancerIP).')
output aksIngressLoadBalancerIp string = aksIngressLoadBalancerIp

@description('Public IP of the Application Gateway (empty until sslCertKeyVaultSecretId is set).')
output appGatewayPublicIp string = deployAppGateway ? appGateway.outputs.publicIpAddress : ''

@description('Application Insights connection string (for an OpenTelemetry collector exporting chatgate telemetry).')
output appInsightsConnectionString string = monitoring.outputs.appInsightsConnectionString

@description('Log Analytics workspace resource id.')
output logAnalyticsWorkspaceId string = monitoring.outputs.workspaceId
