// The way into the private network: Azure Bastion (Standard, native-client tunnelling
// for `az network bastion ssh`) and a Linux jump box without a public IP in
// snet-build-agents. From the jump box an operator runs kubectl against the private API
// server, writes Key Vault secrets, pushes images to the private registry and uploads
// the search index. Sign-in with Entra ID (AADSSHLoginForLinux) or the SSH key given.

@description('Azure region.')
param location string

@description('Prefix for resource names.')
param baseName string

@description('AzureBastionSubnet resource id.')
param bastionSubnetId string

@description('Jump box subnet resource id.')
param jumpboxSubnetId string

@description('Jump box VM size.')
param vmSize string

@description('Local administrator name of the jump box.')
param adminUsername string

@description('SSH public key of the local administrator (password sign-in is disabled).')
param adminSshPublicKey string

@description('Availability zone of the jump box; empty for none.')
param zone string

@description('Log Analytics workspace resource id for diagnostic settings.')
param workspaceId string

@description('Resource tags.')
param tags object

resource bastionIp 'Microsoft.Network/publicIPAddresses@2024-05-01' = {
  name: 'pip-bas-${baseName}'
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Regional'
  }
  properties: {
    publicIPAllocationMethod: 'Static'
    publicIPAddressVersion: 'IPv4'
  }
}

resource bastion 'Microsoft.Network/bastionHosts@2024-05-01' = {
  name: 'bas-${baseName}'
  location: location
  tags: tags
  sku: {
    name: 'Standard'
  }
  properties: {
    enableTunneling: true
    // No file copy or shareable links: the jump box is the only target, by SSH.
    enableFileCopy: false
    enableShareableLink: false
    ipConfigurations: [
      {
        name: 'ipconfig'
        properties: {
          subnet: {
            id: bastionSubnetId
          }
          publicIPAddress: {
            id: bastionIp.id
          }
        }
      }
    ]
  }
}

resource bastionDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: bastion
  properties: {
    workspaceId: workspaceId
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

resource nic 'Microsoft.Network/networkInterfaces@2024-05-01' = {
  name: 'nic-vm-${baseName}-jumpbox'
  location: location
  tags: tags
  properties: {
    ipConfigurations: [
      {
        name: 'ipconfig'
        properties: {
          privateIPAllocationMethod: 'Dynamic'
          subnet: {
            id: jumpboxSubnetId
          }
        }
      }
    ]
  }
}

resource vm 'Microsoft.Compute/virtualMachines@2024-07-01' = {
  name: 'vm-${baseName}-jumpbox'
  location: location
  tags: tags
  zones: empty(zone) ? null : [
    zone
  ]
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    hardwareProfile: {
      vmSize: vmSize
    }
    securityProfile: {
      // Temp disk and caches encrypted on the host, as on the AKS nodes.
      encryptionAtHost: true
      securityType: 'TrustedLaunch'
      uefiSettings: {
        secureBootEnabled: true
        vTpmEnabled: true
      }
    }
    storageProfile: {
      imageReference: {
        publisher: 'Canonical'
        offer: 'ubuntu-24_04-lts'
        sku: 'server'
        version: 'latest'
      }
      osDisk: {
        createOption: 'FromImage'
        deleteOption: 'Delete'
        managedDisk: {
          storageAccountType: 'Premium_LRS'
        }
      }
    }
    osProfile: {
      computerName: 'jumpbox'
      adminUsername: adminUsername
      allowExtensionOperations: true
      linuxConfiguration: {
        disablePasswordAuthentication: true
        provisionVMAgent: true
        // The image's own updater (Ubuntu's unattended-upgrades) applies security
        // updates; platform-orchestrated patching is limited to a list of images this
        // one was not checked against.
        patchSettings: {
          patchMode: 'ImageDefault'
          assessmentMode: 'ImageDefault'
        }
        ssh: {
          publicKeys: [
            {
              path: '/home/${adminUsername}/.ssh/authorized_keys'
              keyData: adminSshPublicKey
            }
          ]
        }
      }
    }
    networkProfile: {
      networkInterfaces: [
        {
          id: nic.id
          properties: {
            deleteOption: 'Delete'
          }
        }
      ]
    }
    diagnosticsProfile: {
      bootDiagnostics: {
        // Managed boot diagnostics storage: no storage account to secure.
        enabled: true
      }
    }
  }
}

// Entra ID sign-in (`az network bastion ssh --auth-type AAD`), so operators need no
// shared key: the roles Virtual Machine Administrator/User Login decide.
resource aadLogin 'Microsoft.Compute/virtualMachines/extensions@2024-07-01' = {
  parent: vm
  name: 'AADSSHLoginForLinux'
  location: location
  tags: tags
  properties: {
    publisher: 'Microsoft.Azure.ActiveDirectory'
    type: 'AADSSHLoginForLinux'
    typeHandlerVersion: '1.0'
    autoUpgradeMinorVersion: true
  }
}

output bastionName string = bastion.name
output vmName string = vm.name
output vmId string = vm.id
