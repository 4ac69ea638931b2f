// One Key Vault secret written by the deployment (control plane, so it works with the
// vault's public network access off). main.bicep seeds what Bicep can know: the
// Application Insights connection string and, when local auth is on, the Azure OpenAI
// and Azure AI Search keys. What only a person has (API keys for clients, the Entra
// JWKS, TLS certificates) is set from the jump box (infra/README.md, "Deploy").

@description('Key Vault name.')
param keyVaultName string

@description('Secret name (letters, digits and hyphens).')
param secretName string

@description('Secret value.')
@secure()
param secretValue string

@description('What the value is, recorded with the secret.')
param contentType string

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: keyVault
  name: secretName
  properties: {
    value: secretValue
    contentType: contentType
  }
}

output secretName string = secret.name
