{{/* The chart's name, cut to the 63 characters a label allows. */}}
{{- define "bastion.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the release, then the chart unless the release already names it. */}}
{{- define "bastion.fullname" -}}
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

{{- define "bastion.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bastion.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "bastion.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "bastion.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "bastion.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "bastion.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret names: the chart's own when it creates them, else the existing ones. */}}
{{- define "bastion.storeSecret" -}}
{{- if .Values.createSecrets.enabled }}{{ include "bastion.fullname" . }}-store{{ else }}{{ required "store.existingSecret is required" .Values.store.existingSecret }}{{ end }}
{{- end }}
{{- define "bastion.sealingSecret" -}}
{{- if .Values.createSecrets.enabled }}{{ include "bastion.fullname" . }}-sealing-key{{ else }}{{ required "sealingKey.existingSecret is required" .Values.sealingKey.existingSecret }}{{ end }}
{{- end }}

{{/* Probes send this Host: the hub refuses any Host that is neither loopback nor its public URL's. */}}
{{- define "bastion.probeHeaders" -}}
httpHeaders:
  - name: Host
    value: localhost
{{- end }}
