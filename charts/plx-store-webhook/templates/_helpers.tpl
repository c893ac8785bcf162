{{/* The name of every object: the release name if it already says plx-store-webhook. */}}
{{- define "plx.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object. `app.kubernetes.io/part-of=plx-store-webhook` is the break-glass
selector: it finds every webhook configuration under every name (docs/install.md). */}}
{{- define "plx.labels" -}}
app.kubernetes.io/name: plx-store-webhook
app.kubernetes.io/part-of: plx-store-webhook
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The pod selector (one release per cluster, as with the kustomize manifests). */}}
{{- define "plx.selector" -}}
app.kubernetes.io/name: plx-store-webhook
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "plx.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "plx.tlsSecret" -}}
{{- if and (eq .Values.certificates.mode "provided") .Values.certificates.provided.secretName -}}
{{- .Values.certificates.provided.secretName -}}
{{- else -}}
{{- include "plx.fullname" . }}-tls
{{- end -}}
{{- end -}}

{{- define "plx.mwcName" -}}
{{- if .Values.keyless.enabled -}}00-{{ end -}}{{ include "plx.fullname" . }}
{{- end -}}

{{/* cert-manager's CA injector fills the caBundle from the serving Certificate's Secret, whose
ca.crt is the CA (it does not change when the serving pair is renewed). */}}
{{- define "plx.caAnnotations" -}}
{{- if eq .Values.certificates.mode "cert-manager" -}}
annotations:
  cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/{{ include "plx.fullname" . }}
{{- end -}}
{{- end -}}

{{/* One webhook entry's common fields (mutating and validating select the same pods). */}}
{{- define "plx.webhookCommon" -}}
admissionReviewVersions: ["v1", "v1beta1"]
sideEffects: None
failurePolicy: {{ .Values.webhook.failurePolicy }}
matchPolicy: Equivalent
timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
{{- end -}}

{{- define "plx.webhookSelectors" -}}
rules:
  - operations: ["CREATE"]
    apiGroups: [""]
    apiVersions: ["v1"]
    resources: ["pods"]
    scope: Namespaced
objectSelector:
  matchLabels:
    {{- $sel := dict "app.kubernetes.io/managed-by" "polyaxon" "app.kubernetes.io/part-of" "polyaxon-runs" }}
    {{- with .Values.injection }}{{ with .selector }}{{ $sel = . }}{{ end }}{{ end }}
    {{- range $k, $v := $sel }}
    {{ $k }}: {{ $v | quote }}
    {{- end }}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      {{- $ex := list }}
      {{- if not .Values.agentConfig.enabled }}{{ $ex = append $ex .Release.Namespace }}{{ end }}
      values: {{ concat $ex .Values.webhook.excludeNamespaces | uniq | toJson }}
{{- end -}}

{{- define "plx.clientConfig" -}}
clientConfig:
  service:
    name: {{ include "plx.fullname" .root }}
    namespace: {{ .root.Release.Namespace }}
    path: {{ .path }}
    port: 443
  {{- if eq .root.Values.certificates.mode "provided" }}
  caBundle: {{ required "certificates.provided.caBundle: base64 of the PEM CA(s) that signed the serving certificate" .root.Values.certificates.provided.caBundle }}
  {{- end }}
{{- end -}}

{{/* The store config file: exactly the keys a Polyaxon values file and the webhook share. */}}
{{- define "plx.storeConfig" -}}
{{- $c := dict "artifactsStore" (required "artifactsStore: set it (pass your Polyaxon values file with -f) or enable agentConfig" (.Values.artifactsStore | default nil)) -}}
{{- with .Values.connections }}{{ $_ := set $c "connections" . }}{{ end -}}
{{- with .Values.injection }}{{ $_ := set $c "injection" . }}{{ end -}}
{{- toYaml $c -}}
{{- end -}}

{{/* The objects the config's routes reference, by kind, as `plx-store-webhook rbac` lists them
(references::of_plan): each route's store and connections (Secret, ConfigMap, claim) and its
identity's ServiceAccount. tests/helm/run.py compares this with the command's output for every
example config, so a change of the command's rules fails there until this follows it. */}}
{{- define "plx.fleetNames" -}}
{{- $v := .Values -}}
{{- $inj := $v.injection | default dict -}}
{{- $byName := dict -}}
{{- range $v.connections }}{{ $_ := set $byName .name . }}{{ end -}}
{{- $store := required "fleet.enabled: the chart grants the names the config references; pass artifactsStore (and connections) even with agentConfig" ($v.artifactsStore | default nil) -}}
{{- $_ := set $byName $store.name $store -}}
{{- $routes := list (dict "store" $store.name "identity" ($inj.identity | default dict) "connections" ($inj.connections | default list)) -}}
{{- range $inj.rules -}}
{{- $routes = append $routes (dict "store" (.store | default $store.name) "identity" (.identity | default dict) "connections" (concat ($inj.connections | default list) (.connections | default list))) -}}
{{- end -}}
{{- $names := dict "secrets" list "configmaps" list "persistentvolumeclaims" list "serviceaccounts" list -}}
{{- range $routes -}}
{{- range prepend .connections .store -}}
{{- $c := get $byName . | default dict -}}
{{- with $c.secret }}{{ with .name }}{{ $_ := set $names "secrets" (append $names.secrets .) }}{{ end }}{{ end -}}
{{- with $c.configMap }}{{ with .name }}{{ $_ := set $names "configmaps" (append $names.configmaps .) }}{{ end }}{{ end -}}
{{- if eq ($c.kind | default "") "volume_claim" }}{{ with $c.schema }}{{ with .volumeClaim }}{{ $_ := set $names "persistentvolumeclaims" (append $names.persistentvolumeclaims .) }}{{ end }}{{ end }}{{ end -}}
{{- end -}}
{{- with .identity.serviceAccountName }}{{ $_ := set $names "serviceaccounts" (append $names.serviceaccounts .) }}{{ end -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}
