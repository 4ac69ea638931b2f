// Example parameters: az deployment group create -g <rg> -n chatgate \
//   -f infra/bicep/main.bicep -p infra/bicep/main.bicepparam
using 'main.bicep'

param baseName = 'chatgate'

// First run: leave empty (no Application Gateway). After importing the TLS
// certificate into the Key Vault from the jump box, set it and re-deploy.
param sslCertKeyVaultSecretId = ''

// Whoever runs the steps after Bicep (a group is best): AKS RBAC Cluster Admin, Key
// Vault Secrets/Certificates Officer, AcrPush, Search contributor roles, jump box login.
param deployerPrincipalId = readEnvironmentVariable('CHATGATE_DEPLOYER_OBJECT_ID', '')
param deployerPrincipalType = 'Group'

// The jump box's SSH key: export CHATGATE_JUMPBOX_SSH_KEY="$(cat ~/.ssh/id_ed25519.pub)"
param jumpboxAdminSshPublicKey = readEnvironmentVariable('CHATGATE_JUMPBOX_SSH_KEY', '')

param aksAdminGroupObjectIds = [
  // '00000000-0000-0000-0000-000000000000'
]

// Entra ID only. Until the components authenticate with workload identity (issue 16
// item 4), set both to false: Bicep then seeds the keys into Key Vault.
param openAiDisableLocalAuth = true
param searchDisableLocalAuth = true
