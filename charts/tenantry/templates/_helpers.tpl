{{/* Helpers of the tenantry chart. Every name is prefixed with "tenantry.". */}}

{{- define "tenantry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped prefix of every resource name; short enough for the longest suffix ("-operator"). */}}
{{- define "tenantry.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tenantry.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: tenantry
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* Selector labels of one component: (dict "root" $ "component" "api"). */}}
{{- define "tenantry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tenantry.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tenantry.componentLabels" -}}
{{ include "tenantry.labels" .root }}
{{ include "tenantry.selectorLabels" . }}
{{- end }}

{{/* Pod labels of one component: (dict "root" $ "component" "api" "extra" podLabels); the chart's own win. */}}
{{- define "tenantry.podLabels" -}}
{{- toYaml (merge (include "tenantry.componentLabels" . | fromYaml) (.extra | default dict)) }}
{{- end }}

{{/*
An image reference: (dict "root" $ "repository" r "tag" t "digest" d). A digest
wins over the tag. global.imageRegistry replaces the repository's registry - its
first part when that looks like a host (has a dot or a port, or is localhost),
as Docker reads references - or goes in front of a repository without one.
*/}}
{{- define "tenantry.imageRef" -}}
{{- $repository := .repository }}
{{- $registry := ((.root.Values.global | default dict).imageRegistry | default "") | trimSuffix "/" }}
{{- if $registry }}
{{- $parts := splitList "/" $repository }}
{{- $first := first $parts }}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) }}
{{- $repository = join "/" (rest $parts) }}
{{- end }}
{{- $repository = printf "%s/%s" $registry $repository }}
{{- end }}
{{- if .digest }}
{{- printf "%s@%s" $repository .digest }}
{{- else }}
{{- printf "%s:%s" $repository .tag }}
{{- end }}
{{- end }}

{{- define "tenantry.image" -}}
{{- $image := .Values.image }}
{{- include "tenantry.imageRef" (dict "root" . "repository" $image.repository "tag" (default .Chart.AppVersion $image.tag) "digest" $image.digest) }}
{{- end }}

{{/* The worker runs the main image (and its digest) unless worker.image names another. */}}
{{- define "tenantry.workerImage" -}}
{{- $worker := .Values.worker.image }}
{{- $repository := default .Values.image.repository $worker.repository }}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) $worker.tag }}
{{- $digest := $worker.digest }}
{{- if and (not $digest) (not $worker.repository) (not $worker.tag) }}
{{- $digest = .Values.image.digest }}
{{- end }}
{{- include "tenantry.imageRef" (dict "root" . "repository" $repository "tag" $tag "digest" $digest) }}
{{- end }}

{{/*
Topology spread constraints of one component: (dict "root" $ "component" "api"
"constraints" list). An entry without a labelSelector selects the component's pods.
*/}}
{{- define "tenantry.topologySpreadConstraints" -}}
{{- $selector := dict "matchLabels" (include "tenantry.selectorLabels" . | fromYaml) }}
{{- $constraints := list }}
{{- range .constraints }}
{{- $constraint := deepCopy . }}
{{- if not (hasKey $constraint "labelSelector") }}
{{- $_ := set $constraint "labelSelector" $selector }}
{{- end }}
{{- $constraints = append $constraints $constraint }}
{{- end }}
{{- toYaml $constraints }}
{{- end }}

{{/* Scheduling fields of a platform pod: (dict "root" $ "values" .Values.api "component" "api"). */}}
{{- define "tenantry.podScheduling" -}}
{{- $v := .values }}
{{- with $v.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- include "tenantry.topologySpreadConstraints" (dict "root" $.root "component" $.component "constraints" .) | nindent 2 }}
{{- end }}
{{- end }}

{{- define "tenantry.operator.serviceAccountName" -}}
{{- default (printf "%s-operator" (include "tenantry.fullname" .)) .Values.operator.serviceAccount.name }}
{{- end }}

{{- define "tenantry.api.serviceAccountName" -}}
{{- default (printf "%s-api" (include "tenantry.fullname" .)) .Values.api.serviceAccount.name }}
{{- end }}

{{/* The namespace of the Secrets the API reads (values: secretsNamespace). */}}
{{- define "tenantry.secretsNamespace" -}}
{{- default (printf "%s-secrets" .Release.Namespace) .Values.secretsNamespace.name }}
{{- end }}

{{- define "tenantry.leaseName" -}}
{{- printf "%s-operator" (include "tenantry.fullname" .) }}
{{- end }}

{{/* The most API replicas that may run at once: what the connection budget must allow. */}}
{{- define "tenantry.api.maxReplicas" -}}
{{- if .Values.api.autoscaling.enabled }}
{{- .Values.api.autoscaling.maxReplicas }}
{{- else }}
{{- max 1 .Values.api.replicaCount }}
{{- end }}
{{- end }}

{{- define "tenantry.api.publicBaseUrl" -}}
{{- if .Values.api.publicBaseUrl }}
{{- .Values.api.publicBaseUrl }}
{{- else }}
{{- printf "http://%s-api.%s.svc:%v" (include "tenantry.fullname" .) .Release.Namespace .Values.api.service.port }}
{{- end }}
{{- end }}

{{/*
Checks between values that the JSON schema cannot express. Fails once, listing
every problem, so a user fixes them all in one go.
*/}}
{{- define "tenantry.validate" -}}
{{- $problems := list }}
{{- $api := .Values.api }}
{{- if and $api.autoscaling.enabled (gt (int $api.autoscaling.minReplicas) (int $api.autoscaling.maxReplicas)) }}
{{- $problems = append $problems (printf "api.autoscaling.minReplicas (%v) is greater than api.autoscaling.maxReplicas (%v)" $api.autoscaling.minReplicas $api.autoscaling.maxReplicas) }}
{{- end }}
{{- $replicas := int (include "tenantry.api.maxReplicas" .) }}
{{- $needed := mul (int $api.tenantPoolsMax) (int $api.tenantPoolMax) $replicas }}
{{- $budget := sub (int $api.dbMaxConnections) (int $api.dbReservedConnections) }}
{{- if gt $needed $budget }}
{{- $problems = append $problems (printf "api.tenantPoolsMax x api.tenantPoolMax x API replicas = %d exceeds api.dbMaxConnections - api.dbReservedConnections = %d; the API would refuse to start" $needed $budget) }}
{{- end }}
{{- if gt (int $api.passwordHashConcurrencyPerTenant) (int $api.passwordHashConcurrency) }}
{{- $problems = append $problems (printf "api.passwordHashConcurrencyPerTenant (%v) is greater than api.passwordHashConcurrency (%v)" $api.passwordHashConcurrencyPerTenant $api.passwordHashConcurrency) }}
{{- end }}
{{- if and (gt (int .Values.operator.replicaCount) 1) (not .Values.operator.leaderElection.enabled) }}
{{- $problems = append $problems "operator.leaderElection.enabled must be true when operator.replicaCount is greater than 1" }}
{{- end }}
{{- $secretsNamespace := include "tenantry.secretsNamespace" . }}
{{- if eq $secretsNamespace .Release.Namespace }}
{{- $problems = append $problems "secretsNamespace.name must differ from the release namespace: the API may read every Secret there, the admin credentials included" }}
{{- end }}
{{- if gt (len $secretsNamespace) 63 }}
{{- $problems = append $problems (printf "the secrets namespace %s is longer than 63 characters; set secretsNamespace.name" $secretsNamespace) }}
{{- end }}
{{- $m := .Values.metrics }}
{{- if eq (int .Values.operator.metricsPort) (int $m.operatorHealthPort) }}
{{- $problems = append $problems (printf "operator.metricsPort and metrics.operatorHealthPort are both %v; the operator needs two ports" $m.operatorHealthPort) }}
{{- end }}
{{- if eq (int $api.port) (int $m.apiPort) }}
{{- $problems = append $problems (printf "api.port and metrics.apiPort are both %v; the API serves /metrics on a port of its own" $m.apiPort) }}
{{- end }}
{{- if and $m.serviceMonitor.enabled (not $m.service.enabled) }}
{{- $problems = append $problems "metrics.serviceMonitor.enabled needs metrics.service.enabled: it scrapes the metrics Services" }}
{{- end }}
{{- if $problems }}
{{- fail (printf "\ninvalid values:\n  - %s" (join "\n  - " $problems)) }}
{{- end }}
{{- end }}

{{/* A postgres://, amqp:// or redis:// URL whose password comes from an env var set just before it. */}}
{{- define "tenantry.url" -}}
{{- $auth := "" }}
{{- if .passwordVar }}
{{- $auth = printf "%s:$(%s)@" (.username | default "") .passwordVar }}
{{- else if .username }}
{{- $auth = printf "%s@" .username }}
{{- end }}
{{- printf "%s://%s%s:%v%s" .scheme $auth .host .port (.path | default "") }}
{{- end }}

{{/* Env vars of the operator that reach PostgreSQL and RabbitMQ. */}}
{{- define "tenantry.operator.serviceEnv" -}}
{{- $pg := .Values.postgres }}
{{- $mq := .Values.rabbitmq }}
{{- if $pg.existingSecret }}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $pg.existingSecret }}
      key: {{ $pg.passwordKey }}
{{- end }}
- name: POSTGRES_URL
  value: {{ include "tenantry.url" (dict "scheme" "postgres" "username" $pg.username "passwordVar" (ternary "POSTGRES_PASSWORD" "" (ne $pg.existingSecret "")) "host" $pg.host "port" $pg.port "path" (printf "/%s" $pg.database)) | quote }}
{{- if $pg.tenantHost }}
- name: TENANT_DB_HOST
  value: {{ $pg.tenantHost | quote }}
{{- end }}
- name: POSTGRES_CIDRS
  value: {{ join "," $pg.cidrs | quote }}
{{- if $mq.existingSecret }}
- name: RABBITMQ_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $mq.existingSecret }}
      key: {{ $mq.passwordKey }}
{{- end }}
{{- $mqPasswordVar := ternary "RABBITMQ_PASSWORD" "" (ne $mq.existingSecret "") }}
- name: RABBITMQ_URL
  value: {{ include "tenantry.url" (dict "scheme" (ternary "amqps" "amqp" $mq.tls) "username" $mq.username "passwordVar" $mqPasswordVar "host" $mq.host "port" $mq.port) | quote }}
- name: RABBITMQ_MANAGEMENT_URL
  value: {{ include "tenantry.url" (dict "scheme" $mq.managementScheme "username" $mq.username "passwordVar" $mqPasswordVar "host" $mq.host "port" $mq.managementPort) | quote }}
- name: RABBITMQ_VHOST
  value: {{ $mq.vhost | quote }}
{{- if $mq.tenantHost }}
- name: TENANT_AMQP_HOST
  value: {{ $mq.tenantHost | quote }}
{{- end }}
- name: RABBITMQ_CIDRS
  value: {{ join "," $mq.cidrs | quote }}
{{- end }}

{{/* One egress rule to an external service: (dict "port" 5432 "cidrs" (list ...)). */}}
{{- define "tenantry.egressTo" -}}
- ports:
    - protocol: TCP
      port: {{ .port }}
  {{- if .cidrs }}
  to:
    {{- range .cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  {{- end }}
{{- end }}

{{- define "tenantry.dnsEgress" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ .Values.networkPolicy.dnsNamespace }}
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end }}

{{- define "tenantry.apiServerEgress" -}}
- ports:
    {{- range .Values.networkPolicy.apiServerPorts }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
  {{- with .Values.networkPolicy.apiServerCidrs }}
  to:
    {{- range . }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  {{- end }}
{{- end }}
