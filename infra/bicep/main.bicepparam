// Example parameters: az deployment group create -g <rg> -n chatgate \
//   -f infra/bicep/main.bicep -p infra/bicep/main.bicepparam
using 'main.bicep'

param baseName = 'chatgate'

// First run: leave empty (no Application Gateway). After importing the TLS
// certificate into the Key Vault from inside the VNet, set it and re-deploy.
param sslCertKeyVaultSecretId = ''

param aksAdminGroupObjectIds = [
  // '00000000-0000-0000-0000-000000000000'
]

param openAiDisableLocalAuth = true
param searchDisableLocalAuth = true
