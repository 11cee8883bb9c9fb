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

{{- define "cairn-cp.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
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
initialDelaySeconds: {{ .probe.initialDelaySeconds }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
{{- end -}}
