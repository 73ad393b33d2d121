{{/* Chart name, truncated to the 63 characters a label allows. */}}
{{- define "switchboard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name: <release>-switchboard, or the release name when it already
contains the chart name. */}}
{{- define "switchboard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The services the chart deploys, in one place: values key, object/component name,
binary, and whether its admin endpoints share the main listener. */}}
{{- define "switchboard.components" -}}
gateway: {name: gateway, binary: switchboard-gateway}
publisher: {name: publisher, binary: switchboard-publisher}
aggregator: {name: aggregator, binary: switchboard-aggregator}
batchIngest: {name: batch-ingest, binary: switchboard-batch-ingest}
deviceReader: {name: device-reader, binary: switchboard-device-reader}
{{- end }}

{{/* Labels of every object. */}}
{{- define "switchboard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "switchboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: switchboard
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component: (dict "root" $ "component" "gateway"). */}}
{{- define "switchboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchboard.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All labels of one component's objects. */}}
{{- define "switchboard.componentLabels" -}}
{{ include "switchboard.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "switchboard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "switchboard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "switchboard.secretName" -}}
{{- default (printf "%s-auth" (include "switchboard.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{/* Image reference of one component: (dict "root" $ "values" .Values.gateway). */}}
{{- define "switchboard.image" -}}
{{- $tag := .values.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion }}
{{- if .root.Values.image.registry }}
{{- printf "%s/%s:%s" (trimSuffix "/" .root.Values.image.registry) .values.image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The required external URLs, checked wherever they are used. */}}
{{- define "switchboard.natsUrl" -}}
{{- required "nats.url is required: the URL of your NATS server with JetStream on, e.g. --set nats.url=nats://nats:4222" .Values.nats.url }}
{{- end }}
{{- define "switchboard.redisUrl" -}}
{{- required "redis.url is required: the URL of your Redis 7 server, e.g. --set redis.url=redis://redis:6379" .Values.redis.url }}
{{- end }}

{{/* The admin port (metrics and probes) of a component: batch-ingest and the device reader
serve them on their one listener. */}}
{{- define "switchboard.adminPort" -}}
{{- if has .key (list "batchIngest" "deviceReader") }}{{ .values.port }}{{ else }}{{ .values.adminPort }}{{ end }}
{{- end }}

{{/* Whether the admin endpoints have a port of their own (not the main listener). */}}
{{- define "switchboard.separateAdminPort" -}}
{{- if and (eq .key "gateway") (ne (int .values.adminPort) (int .values.port)) }}true{{ end }}
{{- end }}
