{{/* Name of the chart, or nameOverride. */}}
{{- define "forwarder.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the resources. fullnameOverride, else fullNameOverride (the spelling of the
reference chart's README, which that chart ignored), else <release>-<chart> (or <release> when it
already contains the chart name). At most 52 characters: a StatefulSet pod name appends
"-<ordinal>" and its controller-revision-hash label "-<hash>" (63 in all).
*/}}
{{- define "forwarder.fullname" -}}
{{- $override := .Values.fullnameOverride | default .Values.fullNameOverride -}}
{{- if $override }}
{{- $override | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "forwarder.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "forwarder.labels" -}}
helm.sh/chart: {{ include "forwarder.chart" . }}
{{ include "forwarder.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: forwarder
{{- end }}

{{- define "forwarder.selectorLabels" -}}
app.kubernetes.io/name: {{ include "forwarder.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "forwarder.configName" -}}
{{- printf "%s-config" (include "forwarder.fullname" .) }}
{{- end }}

{{- define "forwarder.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "forwarder.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Container resources: the reference chart's pod.resources when set, else resources. */}}
{{- define "forwarder.resources" -}}
{{- $pod := .Values.pod | default dict -}}
{{- if $pod.resources }}
{{- toYaml $pod.resources }}
{{- else if .Values.resources }}
{{- toYaml .Values.resources }}
{{- end }}
{{- end }}

{{/* Most replicas this release can run at once. */}}
{{- define "forwarder.maxReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.maxReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{/* The config as the user wrote it (a YAML string, or a map rendered as YAML). */}}
{{- define "forwarder.configSource" -}}
{{- if kindIs "map" .Values.config }}
{{- toYaml .Values.config }}
{{- else }}
{{- .Values.config }}
{{- end }}
{{- end }}

{{/*
The config.yaml of the ConfigMap: the user's text unchanged (comments and quoting kept), plus
the dispatch section that makes the worker count follow the CPU limit (cpuSizing), and with
cpuSizing.processes the top-level processes key that makes the process count follow it too.
Checks that need the config's content fail the install with a message instead of a
crash-looping pod.
*/}}
{{- define "forwarder.config" -}}
{{- $text := include "forwarder.configSource" . -}}
{{- $cfg := fromYaml $text -}}
{{- if hasKey $cfg "Error" }}
{{- fail (printf "config is not valid YAML: %s" (get $cfg "Error")) }}
{{- end }}
{{- if not (kindIs "slice" (get $cfg "forwarding")) }}
{{- fail "config: the forwarding list is missing (see docs/CONFIG.md); config must be the forwarder's config.yaml" }}
{{- end }}
{{- $mqtt := get $cfg "mqtt" | default dict }}
{{- $clientId := toString (get $mqtt "client_id" | default "") }}
{{- if and (gt (int (include "forwarder.maxReplicas" .)) 1) (ne $clientId "") }}
{{- if not (or (contains "${POD_NAME}" $clientId) (contains "${KUBERNETES_POD_NAME}" $clientId) (contains "${HOSTNAME}" $clientId)) }}
{{- fail (printf "config: mqtt.client_id %q is the same in every replica (replicaCount or autoscaling.maxReplicas > 1): the broker would disconnect one replica whenever another connects. Put ${POD_NAME} in it, e.g. 'forwarder-${POD_NAME}' (or set '' for clean sessions)." $clientId) }}
{{- end }}
{{- end }}
{{- $http := get $cfg "http" | default dict }}
{{- if and (hasKey $http "enabled") (not (get $http "enabled")) }}
{{- fail "config: http.enabled is false, but the chart's probes need /healthz and /readyz" }}
{{- end }}
{{- if and (hasKey $http "port") (ne (toString (get $http "port")) (toString .Values.httpPort)) }}
{{- fail (printf "config: http.port is %v but httpPort is %v; the probes, the Service and the ServiceMonitor use httpPort" (get $http "port") .Values.httpPort) }}
{{- end }}
{{- $out := $text }}
{{- if .Values.cpuSizing.enabled }}
{{- $dispatch := get $cfg "dispatch" }}
{{- if not (hasKey $cfg "dispatch") }}
{{- $out = printf "%s\n\n# Added by the chart (cpuSizing.enabled): worker threads from the container's CPU limit.\ndispatch:\n  workers: ${FORWARDER_WORKERS:-1}\n" (trimSuffix "\n" $text) }}
{{- $check := fromYaml $out }}
{{- if or (hasKey $check "Error") (not (hasKey $check "dispatch")) }}
{{- fail "config: cannot append `dispatch: { workers: ${FORWARDER_WORKERS:-1} }` to this config (flow-style YAML?); add it yourself, or set cpuSizing.enabled: false" }}
{{- end }}
{{- else if not (and (kindIs "map" $dispatch) (hasKey $dispatch "workers")) }}
{{- fail "config: a dispatch section without workers. With cpuSizing.enabled add `workers: ${FORWARDER_WORKERS:-1}` to it (the worker count then follows the CPU limit), or set a number" }}
{{- end }}
{{- if and .Values.cpuSizing.processes (not (hasKey $cfg "processes")) }}
{{- $out = printf "%s\n\n# Added by the chart (cpuSizing.processes): ingest processes from the container's CPU limit.\nprocesses: ${FORWARDER_PROCESSES:-1}\n" (trimSuffix "\n" $out) }}
{{- $check := fromYaml $out }}
{{- if or (hasKey $check "Error") (not (hasKey $check "processes")) }}
{{- fail "config: cannot append `processes: ${FORWARDER_PROCESSES:-1}` to this config (flow-style YAML?); add it yourself, or set cpuSizing.processes: false" }}
{{- end }}
{{- end }}
{{- end }}
{{- $out }}
{{- end }}
