{{/*
Names and labels of the cairn-data-plane chart.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "cairn-dp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped base name of every resource (at most 52 characters, leaving room for suffixes). */}}
{{- define "cairn-dp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "cairn-dp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource. */}}
{{- define "cairn-dp.labels" -}}
helm.sh/chart: {{ include "cairn-dp.chart" . }}
{{ include "cairn-dp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cairn
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "cairn-dp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cairn-dp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Selector labels of one component: pass (dict "ctx" $ "component" "worker"). */}}
{{- define "cairn-dp.componentSelectorLabels" -}}
{{ include "cairn-dp.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "cairn-dp.componentLabels" -}}
{{ include "cairn-dp.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The label that lets a pod call the gateway through the NetworkPolicy. */}}
{{- define "cairn-dp.clientLabel" -}}
{{ include "cairn-dp.fullname" . }}-client
{{- end -}}

{{- define "cairn-dp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cairn-dp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
An image reference: pass (dict "image" .Values.x.image "default" tag "global" .Values.global).
global.imageRegistry goes in front of the repository; a digest wins over a tag. Quote the result.
*/}}
{{- define "cairn-dp.image" -}}
{{- $repository := .image.repository -}}
{{- with .global.imageRegistry -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository -}}
{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .default .image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
A digest of the Secrets the chart made (not existingSecret ones) that a pod mounts, so that a change
to one rolls exactly the pods that read it. Pass (dict "ctx" $ "gatewayTokens" true|false); empty
when the pod mounts no chart-made Secret. Every value hashed is high-entropy by the schema (keys of
32 bytes, tokens of 32 characters or more, a password of 16 or more), so the digest gives nothing away.
*/}}
{{- define "cairn-dp.secretChecksum" -}}
{{- $v := .ctx.Values -}}
{{- $parts := list -}}
{{- if not $v.dataPlane.credential.existingSecret -}}
{{- $parts = append $parts (printf "credential=%s" $v.dataPlane.credential.value) -}}
{{- end -}}
{{- if not $v.encryption.existingSecret -}}
{{- $parts = append $parts (printf "encryption-keys=%s hmac-key=%s" $v.encryption.keys $v.encryption.hmacKey) -}}
{{- end -}}
{{- if $v.postgresql.enabled -}}
{{- $a := $v.postgresql.auth -}}
{{- $parts = append $parts (printf "payload-store=%s %s %s %s" $a.username $a.password $a.database (include "cairn-dp.fullname" .ctx)) -}}
{{- end -}}
{{- if and .gatewayTokens (not $v.gateway.auth.existingSecret) -}}
{{- $parts = append $parts (printf "tokens=%s" (join "," $v.gateway.auth.tokens)) -}}
{{- end -}}
{{- if $parts -}}
{{- join "\n" $parts | sha256sum -}}
{{- end -}}
{{- end -}}

{{/* A pod template's annotations: the values' podAnnotations and the Secrets' digest. Pass (dict "annotations" map "checksum" string). */}}
{{- define "cairn-dp.podAnnotations" -}}
{{- $annotations := deepCopy (default dict .annotations) -}}
{{- with .checksum -}}
{{- $_ := set $annotations "checksum/secrets" . -}}
{{- end -}}
{{- with $annotations -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* Secret names and keys, existing or chart-made. */}}
{{- define "cairn-dp.credentialSecret" -}}
{{- default (printf "%s-credential" (include "cairn-dp.fullname" .)) .Values.dataPlane.credential.existingSecret -}}
{{- end -}}
{{- define "cairn-dp.credentialKey" -}}
{{- if .Values.dataPlane.credential.existingSecret }}{{ .Values.dataPlane.credential.existingSecretKey }}{{ else }}credential{{ end -}}
{{- end -}}
{{- define "cairn-dp.encryptionSecret" -}}
{{- default (printf "%s-encryption" (include "cairn-dp.fullname" .)) .Values.encryption.existingSecret -}}
{{- end -}}
{{- define "cairn-dp.payloadStoreSecret" -}}
{{- if .Values.postgresql.enabled -}}
{{- printf "%s-payload-store" (include "cairn-dp.fullname" .) -}}
{{- else -}}
{{- .Values.payloadStore.existingSecret -}}
{{- end -}}
{{- end -}}
{{- define "cairn-dp.payloadStoreKey" -}}
{{- if .Values.postgresql.enabled }}url{{ else }}{{ .Values.payloadStore.existingSecretKey }}{{ end -}}
{{- end -}}
{{- define "cairn-dp.gatewayTokensSecret" -}}
{{- default (printf "%s-gateway-tokens" (include "cairn-dp.fullname" .)) .Values.gateway.auth.existingSecret -}}
{{- end -}}
{{- define "cairn-dp.gatewayTokensKey" -}}
{{- if .Values.gateway.auth.existingSecret }}{{ .Values.gateway.auth.existingSecretKey }}{{ else }}tokens{{ end -}}
{{- end -}}

{{/*
Checks that need more than one value, failing with a message that names the values and says what
to do. values.schema.json checks each value on its own.
*/}}
{{- define "cairn-dp.validate" -}}
{{- $v := .Values -}}
{{- if not $v.controlPlane.address -}}
{{- fail "controlPlane.address is required: the control plane's gRPC address, host:port (e.g. cairn.example.com:443)" -}}
{{- end -}}
{{- if not $v.dataPlane.id -}}
{{- fail "dataPlane.id is required: the data plane's ID (a UUID) the control plane gave when it was registered" -}}
{{- end -}}
{{- if and (not $v.dataPlane.credential.existingSecret) (not $v.dataPlane.credential.value) -}}
{{- fail "dataPlane.credential.existingSecret (preferred) or dataPlane.credential.value is required: the data plane's credential (cdp_...)" -}}
{{- end -}}
{{- if and (not $v.postgresql.enabled) (not $v.payloadStore.existingSecret) -}}
{{- fail "payloadStore.existingSecret is required: a Secret holding the payload store's postgres:// URL (or postgresql.enabled=true for an evaluation install)" -}}
{{- end -}}
{{- if and $v.postgresql.enabled (not $v.postgresql.auth.password) -}}
{{- fail "postgresql.auth.password is required when postgresql.enabled (16 or more letters, digits, '_' or '-')" -}}
{{- end -}}
{{- if and $v.encryption.envelope.enabled (not $v.encryption.existingSecret) -}}
{{- fail "encryption.envelope.enabled needs encryption.existingSecret: a Secret holding the wrapped keys (cairn-gateway wrap-key) and the HMAC key" -}}
{{- end -}}
{{- if and $v.encryption.envelope.enabled (eq $v.encryption.envelope.kms "file") (not $v.encryption.envelope.keyEncryptionKeySecret) -}}
{{- fail "encryption.envelope.kms=file needs encryption.envelope.keyEncryptionKeySecret: the Secret holding the base64 key-encryption key" -}}
{{- end -}}
{{- if and $v.encryption.envelope.enabled (eq $v.encryption.envelope.kms "module") (not $v.encryption.envelope.module) -}}
{{- fail "encryption.envelope.kms=module needs encryption.envelope.module: the path of an ES module exporting (env) => KeyWrapper (mount it with extraVolumes)" -}}
{{- end -}}
{{- if and (not $v.encryption.existingSecret) (or (not $v.encryption.keys) (not $v.encryption.hmacKey)) -}}
{{- fail "encryption.existingSecret (preferred) or both encryption.keys and encryption.hmacKey are required: generate keys with `openssl rand -base64 32`" -}}
{{- end -}}
{{- if and (or $v.gateway.enabled $v.migration.enabled) (not $v.gateway.image.repository) -}}
{{- fail "gateway.image.repository is required: the gateway image in a registry you control (the gateway and the migration Job run it), e.g. registry.example.com/cairn/gateway, built from docker/gateway.Dockerfile or mirrored from a release; pin it with gateway.image.digest (or set global.imageRegistry and give the repository as a path in it)" -}}
{{- end -}}
{{- if not $v.worker.image.repository -}}
{{- fail "worker.image.repository is required: your workflow image, built FROM the Cairn worker base image" -}}
{{- end -}}
{{- if and (not $v.worker.image.tag) (not $v.worker.image.digest) -}}
{{- fail "worker.image.tag or worker.image.digest is required: pin the workflow image you deploy" -}}
{{- end -}}
{{- if and (gt (int $v.worker.terminationGracePeriodSeconds) 0) (lt (int $v.worker.terminationGracePeriodSeconds) (add (int $v.worker.drainTimeoutSeconds) 5)) -}}
{{- fail (printf "worker.terminationGracePeriodSeconds (%d) must be at least worker.drainTimeoutSeconds (%d) + 5, or Kubernetes kills workers in the middle of a drain: raise it, or set it to 0 to derive it (drainTimeoutSeconds + 15)" (int $v.worker.terminationGracePeriodSeconds) (int $v.worker.drainTimeoutSeconds)) -}}
{{- end -}}
{{- if and $v.worker.autoscaling.hpa.enabled $v.worker.autoscaling.keda.enabled -}}
{{- fail "worker.autoscaling.hpa.enabled and worker.autoscaling.keda.enabled are both true: choose one (KEDA manages its own HorizontalPodAutoscaler)" -}}
{{- end -}}
{{- if and $v.worker.autoscaling.keda.enabled (not $v.gateway.enabled) -}}
{{- fail "worker.autoscaling.keda.enabled needs gateway.enabled: the gateway serves KEDA's external scaler" -}}
{{- end -}}
{{- if and $v.gateway.enabled (not $v.gateway.auth.existingSecret) (not $v.gateway.auth.tokens) -}}
{{- fail "gateway.auth.existingSecret (preferred) or gateway.auth.tokens is required: the bearer tokens clients present to the gateway" -}}
{{- end -}}
{{- if $v.networkPolicy.enabled -}}
{{- if and $v.gateway.enabled $v.gateway.ingress.enabled (not $v.networkPolicy.gateway.ingressFrom) (not $v.networkPolicy.gateway.ingressControllerAllowedElsewhere) -}}
{{- fail "gateway.ingress.enabled needs networkPolicy.gateway.ingressFrom: the gateway's NetworkPolicy admits only pods labelled <fullname>-client, so your ingress controller would be blocked (504). Name the controller, e.g. networkPolicy.gateway.ingressFrom[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=ingress-nginx, or set networkPolicy.gateway.ingressControllerAllowedElsewhere=true when a policy of your own lets it in" -}}
{{- end -}}
{{- if and (not $v.proxy.url) (not $v.networkPolicy.controlPlane.cidrs) (not $v.networkPolicy.controlPlane.peers) -}}
{{- fail "networkPolicy.controlPlane.cidrs (or .peers) is required while networkPolicy.enabled: the addresses of the control-plane endpoint, or workers cannot reach it (or set proxy.url when the pods reach it through an HTTP proxy)" -}}
{{- end -}}
{{- if and $v.proxy.url (not $v.proxy.networkPolicy.cidrs) (not $v.proxy.networkPolicy.peers) -}}
{{- fail "proxy.networkPolicy.cidrs (or .peers) is required with proxy.url while networkPolicy.enabled: the proxy's addresses, or the pods cannot reach it" -}}
{{- end -}}
{{- if and (not $v.postgresql.enabled) (not $v.networkPolicy.payloadStore.cidrs) (not $v.networkPolicy.payloadStore.peers) -}}
{{- fail "networkPolicy.payloadStore.cidrs (or .peers) is required while networkPolicy.enabled: the addresses of the payload store's Postgres" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Environment every data-plane process shares: where the control plane is, who we are, the stores. */}}
{{- define "cairn-dp.commonEnv" -}}
- name: CAIRN_CP_GRPC_ADDRESS
  value: {{ .Values.controlPlane.address | quote }}
- name: CAIRN_CP_TLS
  value: {{ .Values.controlPlane.tls.enabled | quote }}
{{- if .Values.controlPlane.tls.caSecret }}
- name: CAIRN_CP_TLS_CA_FILE
  value: /etc/cairn/cp-ca/ca.crt
{{- end }}
{{- if .Values.controlPlane.tls.clientCertSecret }}
- name: CAIRN_CP_TLS_CERT_FILE
  value: /etc/cairn/cp-client/tls.crt
- name: CAIRN_CP_TLS_KEY_FILE
  value: /etc/cairn/cp-client/tls.key
{{- end }}
{{- with .Values.proxy.url }}
- name: HTTPS_PROXY
  value: {{ . | quote }}
- name: HTTP_PROXY
  value: {{ . | quote }}
- name: NO_PROXY
  value: {{ $.Values.proxy.noProxy | quote }}
{{- end }}
- name: CAIRN_DATA_PLANE_ID
  value: {{ .Values.dataPlane.id | quote }}
- name: CAIRN_RESIDENCY
  value: {{ .Values.dataPlane.residency | quote }}
- name: CAIRN_DP_CREDENTIAL_FILE
  value: /etc/cairn/secrets/credential/{{ include "cairn-dp.credentialKey" . }}
{{ include "cairn-dp.storeEnv" . }}
- name: CAIRN_DP_HMAC_KEY_FILE
  value: /etc/cairn/secrets/keys/{{ if .Values.encryption.existingSecret }}{{ .Values.encryption.hmacKeyKey }}{{ else }}hmac-key{{ end }}
{{- end -}}

{{/*
The payload store's URL and key ring (all the migration Job needs). Secrets reach the processes as
read-only files (`*_FILE`), never as environment values.
*/}}
{{- define "cairn-dp.storeEnv" -}}
- name: CAIRN_DP_DATABASE_URL_FILE
  value: /etc/cairn/secrets/payload-store/{{ include "cairn-dp.payloadStoreKey" . }}
{{- if .Values.encryption.envelope.enabled }}
- name: CAIRN_DP_WRAPPED_ENCRYPTION_KEYS_FILE
  value: /etc/cairn/secrets/keys/{{ .Values.encryption.envelope.wrappedKeysKey }}
- name: CAIRN_DP_KMS
  value: {{ .Values.encryption.envelope.kms | quote }}
{{- if eq .Values.encryption.envelope.kms "file" }}
- name: CAIRN_DP_KMS_KEY_FILE
  value: /etc/cairn/secrets/kek/{{ .Values.encryption.envelope.keyEncryptionKeySecretKey }}
{{- else }}
- name: CAIRN_DP_KMS_MODULE
  value: {{ .Values.encryption.envelope.module | quote }}
{{- end }}
{{- else }}
- name: CAIRN_DP_ENCRYPTION_KEYS_FILE
  value: /etc/cairn/secrets/keys/{{ if .Values.encryption.existingSecret }}{{ .Values.encryption.keysKey }}{{ else }}encryption-keys{{ end }}
{{- end }}
{{- end -}}

{{/* The Secrets the payload store needs, as read-only volumes (pass "credential" true to add the data plane's credential). */}}
{{- define "cairn-dp.secretVolumes" -}}
- name: payload-store-secret
  secret:
    secretName: {{ include "cairn-dp.payloadStoreSecret" .ctx }}
- name: keys-secret
  secret:
    secretName: {{ include "cairn-dp.encryptionSecret" .ctx }}
{{- if and .ctx.Values.encryption.envelope.enabled (eq .ctx.Values.encryption.envelope.kms "file") }}
- name: kek-secret
  secret:
    secretName: {{ .ctx.Values.encryption.envelope.keyEncryptionKeySecret }}
{{- end }}
{{- if .credential }}
- name: credential-secret
  secret:
    secretName: {{ include "cairn-dp.credentialSecret" .ctx }}
{{- end }}
{{- end -}}

{{- define "cairn-dp.secretVolumeMounts" -}}
- name: payload-store-secret
  mountPath: /etc/cairn/secrets/payload-store
  readOnly: true
- name: keys-secret
  mountPath: /etc/cairn/secrets/keys
  readOnly: true
{{- if and .ctx.Values.encryption.envelope.enabled (eq .ctx.Values.encryption.envelope.kms "file") }}
- name: kek-secret
  mountPath: /etc/cairn/secrets/kek
  readOnly: true
{{- end }}
{{- if .credential }}
- name: credential-secret
  mountPath: /etc/cairn/secrets/credential
  readOnly: true
{{- end }}
{{- end -}}

{{/* Volumes for the control plane's CA and client certificate, and a writable /tmp. */}}
{{- define "cairn-dp.tlsVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if .Values.controlPlane.tls.caSecret }}
- name: cp-ca
  secret:
    secretName: {{ .Values.controlPlane.tls.caSecret }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- if .Values.controlPlane.tls.clientCertSecret }}
- name: cp-client
  secret:
    secretName: {{ .Values.controlPlane.tls.clientCertSecret }}
{{- end }}
{{- end -}}

{{- define "cairn-dp.tlsVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.controlPlane.tls.caSecret }}
- name: cp-ca
  mountPath: /etc/cairn/cp-ca
  readOnly: true
{{- end }}
{{- if .Values.controlPlane.tls.clientCertSecret }}
- name: cp-client
  mountPath: /etc/cairn/cp-client
  readOnly: true
{{- end }}
{{- end -}}

{{/* A probe: pass (dict "probe" .Values.x.livenessProbe "path" "/healthz" "port" "health"). */}}
{{- define "cairn-dp.probe" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
initialDelaySeconds: {{ .probe.initialDelaySeconds }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
{{- end -}}

{{/* A PodDisruptionBudget spec body: pass (dict "pdb" .Values.x.pdb). */}}
{{- define "cairn-dp.pdbBudget" -}}
{{- if ne (toString .pdb.minAvailable) "" }}
minAvailable: {{ .pdb.minAvailable }}
{{- else }}
maxUnavailable: {{ .pdb.maxUnavailable }}
{{- end }}
unhealthyPodEvictionPolicy: {{ .pdb.unhealthyPodEvictionPolicy }}
{{- end -}}

{{/* The worker's grace period: worker.terminationGracePeriodSeconds, or drainTimeoutSeconds + 15 when 0. */}}
{{- define "cairn-dp.workerGracePeriod" -}}
{{- if gt (int .Values.worker.terminationGracePeriodSeconds) 0 -}}
{{ int .Values.worker.terminationGracePeriodSeconds }}
{{- else -}}
{{ add (int .Values.worker.drainTimeoutSeconds) 15 }}
{{- end -}}
{{- end -}}

{{/* The default soft spread of a component's pods over nodes. */}}
{{- define "cairn-dp.topologySpread" -}}
{{- if .constraints }}
{{- toYaml .constraints }}
{{- else }}
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "cairn-dp.componentSelectorLabels" (dict "ctx" .ctx "component" .component) | nindent 6 }}
{{- end }}
{{- end -}}

{{/* Egress to the control plane, the payload store and DNS: what every data-plane pod needs. */}}
{{- define "cairn-dp.baseEgress" -}}
{{- $np := .Values.networkPolicy -}}
{{- if or $np.controlPlane.cidrs $np.controlPlane.peers }}
# The control plane (gRPC, outbound only).
- to:
    {{- range $np.controlPlane.cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
    {{- with $np.controlPlane.peers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - protocol: TCP
      port: {{ $np.controlPlane.port }}
{{- end }}
{{- if .Values.proxy.url }}
# The HTTP proxy (proxy.url): the control plane and model providers through it.
- to:
    {{- range .Values.proxy.networkPolicy.cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
    {{- with .Values.proxy.networkPolicy.peers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - protocol: TCP
      port: {{ .Values.proxy.networkPolicy.port }}
{{- end }}
# The payload store (your Postgres).
- to:
    {{- if .Values.postgresql.enabled }}
    - podSelector:
        matchLabels:
          {{- include "cairn-dp.componentSelectorLabels" (dict "ctx" . "component" "postgresql") | nindent 10 }}
    {{- end }}
    {{- range $np.payloadStore.cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
    {{- with $np.payloadStore.peers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - protocol: TCP
      port: {{ if .Values.postgresql.enabled }}5432{{ else }}{{ $np.payloadStore.port }}{{ end }}
# Cluster DNS.
- to:
    - namespaceSelector:
        {{- toYaml $np.dns.namespaceSelector | nindent 8 }}
      podSelector:
        {{- toYaml $np.dns.podSelector | nindent 8 }}
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end -}}
