{{- define "langmerge.name" -}}langmerge{{- end -}}
{{- define "langmerge.fullname" -}}{{ .Release.Name }}-langmerge{{- end -}}
{{- define "langmerge.labels" -}}
app.kubernetes.io/name: langmerge
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "langmerge.selector" -}}
app.kubernetes.io/name: langmerge
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "langmerge.budgets" -}}
{{- $items := list -}}
{{- range $ns, $usd := .Values.namespaceBudgets -}}{{- $items = append $items (printf "%s=%v" $ns $usd) -}}{{- end -}}
{{- join "," $items -}}
{{- end -}}
