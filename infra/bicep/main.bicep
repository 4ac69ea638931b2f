// chatgate: private-network landing zone for the Spin/SpinKube rebuild of the
// "baseline OpenAI end-to-end chat" reference architecture.
//
//   internet -> Application Gateway WAF_v2 (snet-appgw)
//            -> internal LB (Service chatgate-ilb) -> SpinApp pods on private AKS (snet-aks-nodes)
//            -> private endpoints (snet-private-endpoints): Azure OpenAI, Azure AI Search, Key Vault
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

@description('Application Gateway subnet. Must match the ingress ipBlock in infra/spinkube/networkpolicies.yaml.')
param appGwSubnetPrefix string = '10.10.1.0/24'

@description('AKS node subnet (nodes + internal load balancer frontend).')
param aksNodesSubnetPrefix string = '10.10.2.0/24'

@description('Private endpoint subnet. Must match the egress ipBlock in infra/spinkube/networkpolicies.yaml.')
param privateEndpointsSubnetPrefix string = '10.10.3.0/24'

@description('Jumpbox / self-hosted build agent subnet.')
param buildAgentsSubnetPrefix string = '10.10.4.0/24'

@description('Create the jumpbox/build-agents subnet (something inside the VNet is needed to run kubectl against the private API server and to write Key Vault secrets).')
param deployBuildAgentsSubnet bool = true

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

@description('IP of the AKS internal load balancer = loadBalancerIP of Service chatgate-ilb (infra/spinkube/service-ilb.yaml); inside aksNodesSubnetPrefix.')
param aksIngressLoadBalancerIp string = '10.10.2.250'

@description('Unauthenticated health path served by chatgate, probed by the gateway.')
param backendHealthProbePath string = '/healthz'

@description('Gateway -> backend timeout in seconds.')
param backendRequestTimeoutSeconds int = 120

@description('WAF managed rule set: OWASP CRS 3.2 or Microsoft Default Rule Set 2.1.')
@allowed([
  'OWASP_3.2'
  'Microsoft_DefaultRuleSet_2.1'
])
param wafManagedRuleSet string = 'OWASP_3.2'

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

@description('Azure AI Search replicas.')
param searchReplicaCount int = 1

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

@description('Cluster egress. Use userDefinedRouting with an Azure Firewall (as the reference architecture does) for controlled egress; that route table/firewall is not part of this template.')
@allowed([
  'loadBalancer'
  'userDefinedRouting'
  'managedNATGateway'
  'userAssignedNATGateway'
])
param aksOutboundType string = 'loadBalancer'

@description('Overlay pod CIDR.')
param aksPodCidr string = '192.168.0.0/16'

@description('Kubernetes service CIDR.')
param aksServiceCidr string = '172.16.0.0/16'

@description('kube-dns IP (inside aksServiceCidr).')
param aksDnsServiceIp string = '172.16.0.10'

@description('Namespace of the chatgate workload (infra/spinkube/namespace.yaml).')
param workloadNamespace string = 'chatgate'

@description('Service account of the chatgate workload (infra/spinkube/serviceaccount.yaml).')
param workloadServiceAccount string = 'chatgate'

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
    deployBuildAgentsSubnet: deployBuildAgentsSubnet
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
  params: {
    location: location
    baseName: baseName
    vnetName: network.outputs.vnetName
    nodesSubnetName: network.outputs.aksNodesSubnetName
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
    openAiAccountName: openAi.outputs.accountName
    keyVaultName: keyVault.outputs.keyVaultName
    searchName: search.outputs.searchName
    workspaceId: monitoring.outputs.workspaceId
    tags: tags
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
    backendRequestTimeoutSeconds: backendRequestTimeoutSeconds
    wafRuleSetType: wafRuleSets[wafManagedRuleSet].type
    wafRuleSetVersion: wafRuleSets[wafManagedRuleSet].version
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

@description('Azure AI Search endpoint. No Spin variable reads it yet: Azure AI Search retrieval is a planned component swap (retrieval-azure-search); today retrieval is BM25 over data/ inside the app.')
output searchEndpoint string = search.outputs.endpoint

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

@description('Kubelet identity object id (grant AcrPull on the registry holding the Spin app).')
output kubeletIdentityObjectId string = aks.outputs.kubeletIdentityObjectId

@description('Internal LB IP the gateway targets (Service chatgate-ilb loadBalancerIP).')
output aksIngressLoadBalancerIp string = aksIngressLoadBalancerIp

@description('Public IP of the Application Gateway (empty until sslCertKeyVaultSecretId is set).')
output appGatewayPublicIp string = deployAppGateway ? appGateway.outputs.publicIpAddress : ''

@description('Application Insights connection string (for an OpenTelemetry collector exporting chatgate telemetry).')
output appInsightsConnectionString string = monitoring.outputs.appInsightsConnectionString

@description('Log Analytics workspace resource id.')
output logAnalyticsWorkspaceId string = monitoring.outputs.workspaceId
