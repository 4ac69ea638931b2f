// Application Gateway WAF_v2 in front of chatgate, mirroring the reference
// architecture's ingress: TLS terminated with a Key Vault certificate, WAF policy in
// Prevention mode (Microsoft Default Rule Set 2.1 by default, with chatgate's
// prompt-field exclusions), and TLS again to the backend: the AKS internal load
// balancer that the Service `chatgate-ilb` (infra/kubernetes/service-ilb.yaml, 443 ->
// pod 8080, served by chatgate with --tls-cert/--tls-key) creates.

@description('Azure region.')
param location string

@description('Prefix for resource names.')
param baseName string

@description('Application Gateway subnet resource id.')
param appGwSubnetId string

@description('Static private frontend IP in the AppGw subnet.')
param privateFrontendIp string

@description('Which frontend the HTTPS listener binds to. Public = internet-facing like the reference architecture; Private = reachable only from the VNet/peered networks.')
@allowed([
  'Public'
  'Private'
])
param listenerFrontend string

@description('Versionless Key Vault secret id of the TLS certificate (https://<vault>.vault.azure.net/secrets/<name>), so AppGw picks up renewals.')
param sslCertKeyVaultSecretId string

@description('Key Vault holding the certificate (the AppGw identity is granted Key Vault Secrets User on it).')
param keyVaultName string

@description('Optional host name for the listener (SNI); empty = basic listener for any host.')
param listenerHostName string

@description('Backend: IP of the AKS internal load balancer (Service chatgate-ilb loadBalancerIP).')
param backendIpAddress string

@description('Health probe path served by chatgate without authentication.')
param healthProbePath string

@description('Host name the gateway sends to the backend (Host header and TLS SNI) and expects in the backend certificate: the subject of the Key Vault certificate chatgate-internal-tls.')
param backendHostName string

@description('Base64 (DER) of the root certificate the backend certificate chains to. For a self-signed chatgate-internal-tls, that certificate itself (public part only). Empty: the gateway trusts only well-known CAs.')
param backendTrustedRootCertificate string

@description('Backend request timeout in seconds (LLM completions can be slow).')
@minValue(1)
@maxValue(86400)
param backendRequestTimeoutSeconds int

@description('WAF managed rule set type.')
@allowed([
  'OWASP'
  'Microsoft_DefaultRuleSet'
])
param wafRuleSetType string

@description('WAF managed rule set version (3.2 for OWASP, 2.1 for Microsoft_DefaultRuleSet).')
param wafRuleSetVersion string

@description('JSON argument names (suffixes) that carry prompts: excluded from the injection rule groups only. See the comment at wafPolicy.')
param wafPromptFieldSuffixes array

@description('Autoscale minimum instance count (2+ for availability).')
@minValue(0)
@maxValue(125)
param minCapacity int

@description('Autoscale maximum instance count.')
@minValue(2)
@maxValue(125)
param maxCapacity int

@description('Availability zones for the gateway and its public IP; empty for regions without zones.')
param zones array

@description('Log Analytics workspace resource id for diagnostic settings.')
param workspaceId string

@description('Resource tags.')
param tags object

var appGwName = 'agw-${baseName}'
var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${baseName}-appgw'
  location: location
  tags: tags
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource certReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, identity.id, keyVaultSecretsUserRoleId)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource publicIp 'Microsoft.Network/publicIPAddresses@2024-05-01' = {
  name: 'pip-${appGwName}'
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

// The injection rule groups, by rule set: the families chatgate's own WAF removes prompt
// fields from (components/waf/rules/chat-policy.conf, rule 40100: sqli, xss, rce, lfi,
// rfi, php, nodejs, java, session fixation and the generic injection tags).
var injectionRuleGroups = {
  Microsoft_DefaultRuleSet: [
    'APPLICATION-ATTACK-LFI'
    'APPLICATION-ATTACK-RFI'
    'APPLICATION-ATTACK-RCE'
    'APPLICATION-ATTACK-PHP'
    'APPLICATION-ATTACK-NodeJS'
    'APPLICATION-ATTACK-XSS'
    'APPLICATION-ATTACK-SQLI'
    'APPLICATION-ATTACK-SESSION-FIXATION'
    'APPLICATION-ATTACK-SESSION-JAVA'
    'MS-ThreatIntel-SQLI'
  ]
  OWASP: [
    'REQUEST-930-APPLICATION-ATTACK-LFI'
    'REQUEST-931-APPLICATION-ATTACK-RFI'
    'REQUEST-932-APPLICATION-ATTACK-RCE'
    'REQUEST-933-APPLICATION-ATTACK-PHP'
    'REQUEST-941-APPLICATION-ATTACK-XSS'
    'REQUEST-942-APPLICATION-ATTACK-SQLI'
    'REQUEST-943-APPLICATION-ATTACK-SESSION-FIXATION'
    'REQUEST-944-APPLICATION-ATTACK-SESSION-JAVA'
  ]
}

// An empty rules list names the whole group. (Bicep allows no loop inside a loop, so
// this list is built first.)
var excludedRuleGroups = [
  for group in injectionRuleGroups[wafRuleSetType]: {
    ruleGroupName: group
    rules: []
  }
]

// Chat-aware exclusions. A question about SQL or a pasted stack trace in
// messages[*].content is prose for the model, and the injection rules would refuse it.
// chatgate's own WAF exempts exactly the prompt fields by a regular expression over the
// JSON path (messages.N.content, messages.N.content.M.text, ...) and refuses keys that
// only imitate them. Application Gateway's exclusions cannot express that: a selector is
// matched with Equals/StartsWith/EndsWith/Contains only, and Microsoft does not document
// how nested JSON names are spelled. So the gateway excludes argument names ENDING in a
// prompt field's last segment, from the injection rule groups only; every other rule
// group, and every other argument, keeps full inspection, and the precise policy (with
// its guards and the prompt-injection rules) runs again inside chatgate. That an
// exclusion on these suffixes matches DRS 2.1's names for nested JSON values has not
// been tried against a gateway.
var promptExclusions = [
  for suffix in wafPromptFieldSuffixes: {
    matchVariable: 'RequestArgNames'
    selectorMatchOperator: 'EndsWith'
    selector: suffix
    exclusionManagedRuleSets: [
      {
        ruleSetType: wafRuleSetType
        ruleSetVersion: wafRuleSetVersion
        ruleGroups: excludedRuleGroups
      }
    ]
  }
]

resource wafPolicy 'Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies@2024-05-01' = {
  name: 'waf-${baseName}'
  location: location
  tags: tags
  properties: {
    policySettings: {
      state: 'Enabled'
      mode: 'Prevention'
      requestBodyCheck: true
      maxRequestBodySizeInKb: 128
      fileUploadLimitInMb: 4
    }
    managedRules: {
      exclusions: promptExclusions
      managedRuleSets: [
        {
          ruleSetType: wafRuleSetType
          ruleSetVersion: wafRuleSetVersion
        }
        {
          ruleSetType: 'Microsoft_BotManagerRuleSet'
          ruleSetVersion: '1.0'
        }
      ]
    }
    customRules: []
  }
}

var gwId = resourceId('Microsoft.Network/applicationGateways', appGwName)

resource appGw 'Microsoft.Network/applicationGateways@2024-05-01' = {
  name: appGwName
  location: location
  tags: tags
  zones: zones
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  dependsOn: [
    certReader
  ]
  properties: {
    sku: {
      name: 'WAF_v2'
      tier: 'WAF_v2'
    }
    autoscaleConfiguration: {
      minCapacity: minCapacity
      maxCapacity: maxCapacity
    }
    enableHttp2: true
    // Streamed answers (server-sent events) must reach the client as the backend sends
    // them: response buffering off. Requests stay buffered (the default), so the WAF
    // sees whole bodies and slow uploads end at the gateway. The same split is what
    // tests/tests/e2e/netns.rs gives nginx in the gateway's role.
    globalConfiguration: {
      enableRequestBuffering: true
      enableResponseBuffering: false
    }
    firewallPolicy: {
      id: wafPolicy.id
    }
    sslPolicy: {
      policyType: 'Predefined'
      policyName: 'AppGwSslPolicy20220101S'
    }
    gatewayIPConfigurations: [
      {
        name: 'gateway-ip'
        properties: {
          subnet: {
            id: appGwSubnetId
          }
        }
      }
    ]
    frontendIPConfigurations: [
      {
        name: 'frontend-public'
        properties: {
          publicIPAddress: {
            id: publicIp.id
          }
        }
      }
      {
        name: 'frontend-private'
        properties: {
          privateIPAllocationMethod: 'Static'
          privateIPAddress: privateFrontendIp
          subnet: {
            id: appGwSubnetId
          }
        }
      }
    ]
    frontendPorts: [
      {
        name: 'port-443'
        properties: {
          port: 443
        }
      }
    ]
    sslCertificates: [
      {
        name: 'chatgate-tls'
        properties: {
          keyVaultSecretId: sslCertKeyVaultSecretId
        }
      }
    ]
    trustedRootCertificates: empty(backendTrustedRootCertificate) ? [] : [
      {
        name: 'chatgate-internal-root'
        properties: {
          data: backendTrustedRootCertificate
        }
      }
    ]
    backendAddressPools: [
      {
        name: 'aks-ilb'
        properties: {
          backendAddresses: [
            {
              ipAddress: backendIpAddress
            }
          ]
        }
      }
    ]
    probes: [
      {
        name: 'chatgate-healthz'
        properties: {
          protocol: 'Https'
          host: backendHostName
          path: healthProbePath
          interval: 30
          timeout: 30
          unhealthyThreshold: 3
          pickHostNameFromBackendHttpSettings: false
          match: {
            statusCodes: [
              '200-399'
            ]
          }
        }
      }
    ]
    backendHttpSettingsCollection: [
      {
        name: 'chatgate-https'
        properties: {
          // End-to-end TLS: the gateway re-encrypts to the internal load balancer, and
          // chatgate in the pod terminates it with the Key Vault certificate
          // chatgate-internal-tls. The gateway checks that the certificate chains to
          // the trusted root below and names backendHostName.
          port: 443
          protocol: 'Https'
          cookieBasedAffinity: 'Disabled'
          requestTimeout: backendRequestTimeoutSeconds
          pickHostNameFromBackendAddress: false
          hostName: backendHostName
          trustedRootCertificates: empty(backendTrustedRootCertificate) ? [] : [
            {
              id: '${gwId}/trustedRootCertificates/chatgate-internal-root'
            }
          ]
          probe: {
            id: '${gwId}/probes/chatgate-healthz'
          }
        }
      }
    ]
    httpListeners: [
      {
        name: 'https'
        properties: {
          frontendIPConfiguration: {
            id: '${gwId}/frontendIPConfigurations/${listenerFrontend == 'Public' ? 'frontend-public' : 'frontend-private'}'
          }
          frontendPort: {
            id: '${gwId}/frontendPorts/port-443'
          }
          protocol: 'Https'
          sslCertificate: {
            id: '${gwId}/sslCertificates/chatgate-tls'
          }
          hostName: empty(listenerHostName) ? null : listenerHostName
          requireServerNameIndication: !empty(listenerHostName)
        }
      }
    ]
    requestRoutingRules: [
      {
        name: 'chatgate'
        properties: {
          ruleType: 'Basic'
          priority: 100
          httpListener: {
            id: '${gwId}/httpListeners/https'
          }
          backendAddressPool: {
            id: '${gwId}/backendAddressPools/aks-ilb'
          }
          backendHttpSettings: {
            id: '${gwId}/backendHttpSettingsCollection/chatgate-https'
          }
        }
      }
    ]
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: appGw
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        // Access, performance and firewall (WAF) logs.
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

output appGatewayId string = appGw.id
output publicIpAddress string = publicIp.properties.ipAddress
output privateFrontendIp string = privateFrontendIp
output wafPolicyId string = wafPolicy.id
