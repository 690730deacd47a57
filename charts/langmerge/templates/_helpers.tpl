{{- define "langmerge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{/* release-name (contains the chart's name) or release-name-langmerge; fullnameOverride wins */}}
{{- define "langmerge.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "langmerge.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- define "langmerge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "langmerge.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: name the existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}
{{- define "langmerge.labels" -}}
app.kubernetes.io/name: {{ include "langmerge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "langmerge.selector" -}}
app.kubernetes.io/name: {{ include "langmerge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{/* repository:tag of one of the images; the tag defaults to the chart's appVersion */}}
{{- define "langmerge.image" -}}
{{- printf "%s:%s" .repository (default .appVersion .tag) -}}
{{- end -}}
{{- define "langmerge.budgets" -}}
{{- $items := list -}}
{{- range $ns, $usd := .Values.namespaceBudgets -}}{{- $items = append $items (printf "%s=%v" $ns $usd) -}}{{- end -}}
{{- join "," $items -}}
{{- end -}}
{{/* The ClusterTrainingRuntime of the release's TrainJobs (cluster-scoped: one per release) */}}
{{- define "langmerge.trainingRuntime" -}}
{{- printf "%s-torch" (include "langmerge.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
