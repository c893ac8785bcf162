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

{{/* The fleet view's RBAC as `plx-store-webhook rbac` derives it (fleet::scope, fleet::rbac):
each route (the default, then every rule) references objects by kind — its store's and
connections' Secret, ConfigMap or claim, its identity's ServiceAccount (references::of_store) —
and looks in its namespaces: its rule's `match.namespaces` when all literal, within
`injection.namespaces.include` when that is all literal, kept by include/exclude; otherwise
cluster-wide. An object is granted where any of its routes looks; run pods where the default
route looks. Gives JSON {"cluster": RULES, "namespaces": {NS: RULES}}, RULES = {"pods": true,
RESOURCE: [names]}. tests/helm/run.py compares the rendering with the command's output for
every example config and a seeded set of generated ones. */}}
{{- define "plx.fleetGrants" -}}
{{- $v := .Values -}}
{{- $inj := $v.injection | default dict -}}
{{- $nss := $inj.namespaces | default dict -}}
{{- $policy := dict "include" ($nss.include | default list) "exclude" ($nss.exclude | default list) -}}
{{- $byName := dict -}}
{{- range $v.connections }}{{ $_ := set $byName .name . }}{{ end -}}
{{- $store := required "fleet.enabled: the chart grants the names the config references; pass artifactsStore (and connections) even with agentConfig" ($v.artifactsStore | default nil) -}}
{{- $_ := set $byName $store.name $store -}}
{{- $default := dict "store" $store.name "identity" ($inj.identity | default dict) "connections" ($inj.connections | default list) "namespaces" list -}}
{{- $routes := list $default -}}
{{- range $inj.rules -}}
{{- $routes = append $routes (dict "store" (.store | default $store.name) "identity" (.identity | default dict) "connections" (concat ($inj.connections | default list) (.connections | default list)) "namespaces" (get (.match | default dict) "namespaces" | default list)) -}}
{{- end -}}
{{- /* kind -> name -> where ({"cluster": bool, "ns": [...]}), as the routes union it */ -}}
{{- $at := dict "secrets" dict "configmaps" dict "persistentvolumeclaims" dict "serviceaccounts" dict -}}
{{- range $routes -}}
{{- $where := include "plx.fleetWhere" (merge (dict "rule" .namespaces) $policy) | fromJson -}}
{{- $refs := list -}}
{{- range prepend .connections .store -}}
{{- $c := get $byName . | default dict -}}
{{- with $c.secret }}{{ with .name }}{{ $refs = append $refs (list "secrets" .) }}{{ end }}{{ end -}}
{{- with $c.configMap }}{{ with .name }}{{ $refs = append $refs (list "configmaps" .) }}{{ end }}{{ end -}}
{{- if eq ($c.kind | default "") "volume_claim" }}{{ with $c.schema }}{{ with .volumeClaim }}{{ $refs = append $refs (list "persistentvolumeclaims" .) }}{{ end }}{{ end }}{{ end -}}
{{- end -}}
{{- with .identity.serviceAccountName }}{{ $refs = append $refs (list "serviceaccounts" .) }}{{ end -}}
{{- range $refs -}}
{{- $byKind := get $at (index . 0) -}}
{{- $old := get $byKind (index . 1) | default (dict "cluster" false "ns" list) -}}
{{- $_ := set $byKind (index . 1) (dict "cluster" (or $old.cluster $where.cluster) "ns" (concat $old.ns $where.ns)) -}}
{{- end -}}
{{- end -}}
{{- $out := dict "cluster" dict "namespaces" dict -}}
{{- $pods := include "plx.fleetWhere" (merge (dict "rule" list) $policy) | fromJson -}}
{{- if $pods.cluster }}{{ $_ := set $out.cluster "pods" true }}{{ end -}}
{{- range $pods.ns }}{{ $s := get $out.namespaces . | default dict }}{{ $_ := set $s "pods" true }}{{ $_ := set $out.namespaces . $s }}{{ end -}}
{{- range $kind, $names := $at -}}
{{- range $name, $w := $names -}}
{{- if $w.cluster }}{{ $_ := set $out.cluster $kind (append (get $out.cluster $kind | default list) $name) }}
{{- else }}{{ range ($w.ns | uniq) }}{{ $s := get $out.namespaces . | default dict }}{{ $_ := set $s $kind (append (get $s $kind | default list) $name) }}{{ $_ := set $out.namespaces . $s }}{{ end }}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* Where one route looks (fleet::scope::of's `route`), given its rule's namespace globs and the
policy's include/exclude: {"cluster": true}, or {"cluster": false, "ns": [...]}. */}}
{{- define "plx.fleetWhere" -}}
{{- $rule := include "plx.literalNames" .rule -}}
{{- $incl := include "plx.literalNames" .include -}}
{{- if not (or $rule $incl) -}}
{{- dict "cluster" true "ns" list | toJson -}}
{{- else -}}
{{- $set := list -}}
{{- if and $rule $incl }}{{ $in := fromJsonArray $incl }}{{ range fromJsonArray $rule }}{{ if has . $in }}{{ $set = append $set . }}{{ end }}{{ end }}
{{- else }}{{ $set = fromJsonArray (coalesce $rule $incl) }}{{ end -}}
{{- $keep := list -}}
{{- range $set }}{{ if include "plx.namespaceAllowed" (dict "ns" . "include" $.include "exclude" $.exclude) }}{{ $keep = append $keep . }}{{ end }}{{ end -}}
{{- dict "cluster" false "ns" $keep | toJson -}}
{{- end -}}
{{- end -}}

{{/* The names in a list of globs, as a sorted JSON list, when every one is literal (no `*` or
`?`) and there is at least one; else empty. */}}
{{- define "plx.literalNames" -}}
{{- $literal := gt (len .) 0 -}}
{{- range . }}{{ if regexMatch "[*?]" (toString .) }}{{ $literal = false }}{{ end }}{{ end -}}
{{- if $literal }}{{ . | uniq | sortAlpha | toJson }}{{ end -}}
{{- end -}}

{{/* "true" when the webhook handles namespace .ns (engine::select::namespace_allowed): an empty
include or one of its globs matches, and no exclude glob does. */}}
{{- define "plx.namespaceAllowed" -}}
{{- $ns := .ns -}}
{{- $in := not .include -}}
{{- range .include }}{{ if include "plx.globMatches" (dict "glob" . "name" $ns) }}{{ $in = true }}{{ end }}{{ end -}}
{{- range .exclude }}{{ if include "plx.globMatches" (dict "glob" . "name" $ns) }}{{ $in = false }}{{ end }}{{ end -}}
{{- if $in }}true{{ end -}}
{{- end -}}

{{/* "true" when glob .glob (`*` any run, `?` one character, the rest literal: core/src/glob.rs)
matches the whole of .name. */}}
{{- define "plx.globMatches" -}}
{{- $re := regexQuoteMeta (toString .glob) | replace "\\*" ".*" | replace "\\?" "." -}}
{{- if regexMatch (printf "^(?s:%s)$" $re) (toString .name) }}true{{ end -}}
{{- end -}}
