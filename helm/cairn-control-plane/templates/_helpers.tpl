{{/*
Names and labels of the cairn-control-plane chart.
*/}}

{{- define "cairn-cp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped base name of every resource (at most 52 characters, leaving room for suffixes). */}}
{{- define "cairn-cp.fullname" -}}
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

{{- define "cairn-cp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cairn-cp.labels" -}}
helm.sh/chart: {{ include "cairn-cp.chart" . }}
{{ include "cairn-cp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cairn
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "cairn-cp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cairn-cp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Selector labels of one component: pass (dict "ctx" $ "component" "server"). */}}
{{- define "cairn-cp.componentSelectorLabels" -}}
{{ include "cairn-cp.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "cairn-cp.componentLabels" -}}
{{ include "cairn-cp.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "cairn-cp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cairn-cp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image reference (quote it): global.imageRegistry in front of the repository; a digest wins over a tag. */}}
{{- define "cairn-cp.image" -}}
{{- $repository := .Values.image.repository -}}
{{- with .Values.global.imageRegistry -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
A digest of the Secret the chart made for the bootstrap admin key (not an existingSecret), so that
changing bootstrap.adminKey rolls the pods; empty otherwise. The key is 16 or more characters.
*/}}
{{- define "cairn-cp.secretChecksum" -}}
{{- if not .Values.bootstrap.existingSecret -}}
{{- printf "admin-key=%s" .Values.bootstrap.adminKey | sha256sum -}}
{{- end -}}
{{- end -}}

{{/* The name the gRPC certificate must carry for `helm test`: the name data planes dial. */}}
{{- define "cairn-cp.grpcServerName" -}}
{{- if .Values.tests.grpc.serverName -}}
{{- .Values.tests.grpc.serverName -}}
{{- else if .Values.ingress.grpc.enabled -}}
{{- .Values.ingress.grpc.host -}}
{{- else -}}
{{- printf "%s.%s.svc" (include "cairn-cp.fullname" .) .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* The annotations the gRPC Ingress needs for ingress-nginx to reach the gRPC port as it is served. */}}
{{- define "cairn-cp.grpcIngressAnnotations" -}}
{{- $chart := dict -}}
{{- if .Values.ingress.grpc.tlsPassthrough -}}
{{- $_ := set $chart "nginx.ingress.kubernetes.io/ssl-passthrough" "true" -}}
{{- else -}}
{{- $_ := set $chart "nginx.ingress.kubernetes.io/backend-protocol" (ternary "GRPCS" "GRPC" (not (empty .Values.grpcTls.certSecret))) -}}
{{- end -}}
{{- toYaml (merge (deepCopy .Values.ingress.grpc.annotations) $chart) -}}
{{- end -}}

{{- define "cairn-cp.bootstrapSecret" -}}
{{- default (printf "%s-bootstrap" (include "cairn-cp.fullname" .)) .Values.bootstrap.existingSecret -}}
{{- end -}}
{{- define "cairn-cp.bootstrapKey" -}}
{{- if .Values.bootstrap.existingSecret }}{{ .Values.bootstrap.existingSecretKey }}{{ else }}admin-key{{ end -}}
{{- end -}}

{{/* Checks that need more than one value; each message names the values and what to do. */}}
{{- define "cairn-cp.validate" -}}
{{- $v := .Values -}}
{{- if not $v.image.repository -}}
{{- fail "image.repository is required: the control-plane image in a registry you control (the server, the migration Job, audit retention and the helm test run it), e.g. registry.example.com/cairn/control-plane, built from docker/control-plane.Dockerfile or mirrored from a release; pin it with image.digest (or set global.imageRegistry and give the repository as a path in it)" -}}
{{- end -}}
{{- if lt (int $v.terminationGracePeriodSeconds) (add (int $v.preStopSleepSeconds) 10) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be at least preStopSleepSeconds (%d) + 10: the grace period covers the preStop sleep and then the shutdown" (int $v.terminationGracePeriodSeconds) (int $v.preStopSleepSeconds)) -}}
{{- end -}}
{{- if not $v.database.existingSecret -}}
{{- fail "database.existingSecret is required: a Secret holding the control plane's postgres:// URL (PostgreSQL 15-18)" -}}
{{- end -}}
{{- if and (not $v.bootstrap.existingSecret) (not $v.bootstrap.adminKey) -}}
{{- fail "bootstrap.existingSecret (preferred) or bootstrap.adminKey is required: the organisation-wide admin API key of a self-hosted control plane" -}}
{{- end -}}
{{- if and $v.database.migration.existingSecret (not $v.database.serviceRole) -}}
{{- fail "database.serviceRole is required with database.migration.existingSecret: the name of the role in database.existingSecret's URL, which the migration Job grants" -}}
{{- end -}}
{{- if and $v.database.serviceRole (not $v.database.migration.existingSecret) -}}
{{- fail "database.migration.existingSecret is required with database.serviceRole: the schema owner's URL, which the migration Job runs with (the service role cannot migrate)" -}}
{{- end -}}
{{- if and (gt (int $v.audit.retention.days) 0) (not $v.audit.retention.publicKey) -}}
{{- fail "audit.retention.publicKey is required with audit.retention.days: the public key (`cairn audit keys`) the prune checks checkpoints with" -}}
{{- end -}}
{{- if and $v.database.serviceRole (not $v.migration.enabled) -}}
{{- fail "migration.enabled must be true with database.serviceRole: replicas serving as the service role cannot migrate at start" -}}
{{- end -}}
{{- if ge (int $v.config.heartbeatIntervalMs) (int $v.config.leaseTtlMs) -}}
{{- fail (printf "config.heartbeatIntervalMs (%d) must be below config.leaseTtlMs (%d)" (int $v.config.heartbeatIntervalMs) (int $v.config.leaseTtlMs)) -}}
{{- end -}}
{{- if and $v.ingress.enabled (not $v.ingress.host) -}}
{{- fail "ingress.host is required when ingress.enabled" -}}
{{- end -}}
{{- if and $v.ingress.grpc.enabled (not $v.ingress.grpc.host) -}}
{{- fail "ingress.grpc.host is required when ingress.grpc.enabled" -}}
{{- end -}}
{{- if $v.ingress.grpc.enabled -}}
{{- $protocol := index $v.ingress.grpc.annotations "nginx.ingress.kubernetes.io/backend-protocol" | default "" | upper -}}
{{- if and $v.grpcTls.clientCaSecret (not $v.ingress.grpc.tlsPassthrough) -}}
{{- fail "grpcTls.clientCaSecret (mutual TLS) with ingress.grpc.enabled needs ingress.grpc.tlsPassthrough=true: an Ingress that terminates TLS cannot hand the data planes' client certificates to the control plane (ingress-nginx must then run with --enable-ssl-passthrough). Or publish the gRPC port without an Ingress (service.type=LoadBalancer)" -}}
{{- end -}}
{{- if and $v.ingress.grpc.tlsPassthrough (not $v.grpcTls.certSecret) -}}
{{- fail "ingress.grpc.tlsPassthrough needs grpcTls.certSecret: with passthrough the control plane itself serves TLS for ingress.grpc.host, with a certificate that names it" -}}
{{- end -}}
{{- if and $v.ingress.grpc.tlsPassthrough $v.ingress.grpc.tlsSecret -}}
{{- fail "ingress.grpc.tlsSecret is not used with ingress.grpc.tlsPassthrough: the control plane serves grpcTls.certSecret itself; leave ingress.grpc.tlsSecret empty" -}}
{{- end -}}
{{- if and (not $v.ingress.grpc.tlsPassthrough) $v.grpcTls.certSecret (eq $protocol "GRPC") -}}
{{- fail "the gRPC port serves TLS (grpcTls.certSecret) but ingress.grpc.annotations sets nginx.ingress.kubernetes.io/backend-protocol GRPC (plaintext): remove that annotation (the chart sets GRPCS) or set ingress.grpc.tlsPassthrough=true" -}}
{{- end -}}
{{- if and (not $v.grpcTls.certSecret) (eq $protocol "GRPCS") -}}
{{- fail "the gRPC port serves plaintext (grpcTls.certSecret is empty) but ingress.grpc.annotations sets nginx.ingress.kubernetes.io/backend-protocol GRPCS: remove that annotation (the chart sets GRPC) or set grpcTls.certSecret" -}}
{{- end -}}
{{- end -}}
{{- if and $v.networkPolicy.enabled (not $v.networkPolicy.database.cidrs) (not $v.networkPolicy.database.peers) -}}
{{- fail "networkPolicy.database.cidrs (or .peers) is required while networkPolicy.enabled: the addresses of the control plane's Postgres" -}}
{{- end -}}
{{- end -}}

{{/* The database URL the control plane serves with. */}}
{{- define "cairn-cp.databaseEnv" -}}
- name: CAIRN_CP_DATABASE_URL_FILE
  value: /etc/cairn/secrets/database/{{ .Values.database.existingSecretKey }}
{{- end -}}

{{/* What the migration Job needs: the owner's URL (or the one URL), and the service role to grant. */}}
{{- define "cairn-cp.migrationEnv" -}}
{{- if .Values.database.migration.existingSecret }}
- name: CAIRN_CP_DATABASE_URL_FILE
  value: /etc/cairn/secrets/database-owner/{{ .Values.database.migration.existingSecretKey }}
- name: CAIRN_CP_SERVICE_ROLE
  value: {{ .Values.database.serviceRole | quote }}
{{- else }}
{{- include "cairn-cp.databaseEnv" . }}
{{- end }}
{{- end -}}

{{/* The database URL's Secret as a read-only file: the service's, or (migration "owner") the owner's. */}}
{{- define "cairn-cp.databaseVolume" -}}
{{- if and .owner .ctx.Values.database.migration.existingSecret }}
- name: database-owner-secret
  secret:
    secretName: {{ .ctx.Values.database.migration.existingSecret }}
{{- else }}
- name: database-secret
  secret:
    secretName: {{ .ctx.Values.database.existingSecret }}
{{- end }}
{{- end -}}

{{- define "cairn-cp.databaseVolumeMount" -}}
{{- if and .owner .ctx.Values.database.migration.existingSecret }}
- name: database-owner-secret
  mountPath: /etc/cairn/secrets/database-owner
  readOnly: true
{{- else }}
- name: database-secret
  mountPath: /etc/cairn/secrets/database
  readOnly: true
{{- end }}
{{- end -}}

{{- define "cairn-cp.probe" -}}
httpGet:
  path: {{ .path }}
  port: http
  {{- if .https }}
  scheme: HTTPS
  {{- end }}
initialDelaySeconds: {{ .probe.initialDelaySeconds }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
{{- end -}}
