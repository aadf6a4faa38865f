{{/*
The release's full name: fullnameOverride, else the release name when it
already says hermod, else "<release>-hermod".
*/}}
{{- define "hermod.fullname" -}}
{{- $base := .Values.nameOverride | default .Chart.Name -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains $base .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $base | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that pick one component's pods: root and component in a dict. */}}
{{- define "hermod.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Values.nameOverride | default .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Every object's labels. */}}
{{- define "hermod.labels" -}}
{{ include "hermod.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "hermod.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "hermod.fullname" .) -}}
{{- end -}}

{{/* The Secret holding keys and credentials: the given one or the chart's. */}}
{{- define "hermod.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "hermod.fullname" .) -}}
{{- end -}}

{{- define "hermod.services" -}}
{{- if or .Values.api.enabled .Values.router.enabled .Values.deliverer.enabled }}true{{ end -}}
{{- end -}}

{{/* An environment variable from the Secret: root, key and optional in a dict. */}}
{{- define "hermod.secretEnv" -}}
- name: {{ .key }}
  valueFrom:
    secretKeyRef:
      name: {{ include "hermod.secretName" .root }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end -}}

{{/* What api, router and deliverer all read: NATS, Redis and the stream settings. */}}
{{- define "hermod.serviceEnv" -}}
{{ include "hermod.secretEnv" (dict "root" . "key" "HERMOD_NATS_URL") }}
{{ include "hermod.secretEnv" (dict "root" . "key" "HERMOD_REDIS_URL") }}
- {name: HERMOD_STREAM_REPLICAS, value: {{ .Values.config.streamReplicas | quote }}}
- {name: HERMOD_DEDUP_WINDOW, value: {{ .Values.config.dedupWindow | quote }}}
- {name: HERMOD_ACQUIRE_TTL, value: {{ .Values.config.acquireTtl | quote }}}
- {name: HERMOD_RETENTION, value: {{ .Values.config.retention | quote }}}
- {name: HERMOD_HISTORY_LIMIT, value: {{ .Values.config.historyLimit | quote }}}
- {name: HERMOD_MAX_HOLD, value: {{ .Values.config.maxHold | quote }}}
- {name: HERMOD_MAX_EVENT_BYTES, value: {{ .Values.config.maxEventBytes | quote }}}
{{- end -}}

{{/*
One component: its Deployment, its Service, its PodDisruptionBudget.
dict: root; component (api, router, ...); c (its values); port; addrEnv
(the variable giving its listen address); env (its own variables, YAML);
replicas (omitted when empty: an autoscaler sets them); strategy.
*/}}
{{- define "hermod.component" -}}
{{- $root := .root -}}
{{- $c := .c -}}
{{- $sel := dict "root" $root "component" .component -}}
{{- $name := printf "%s-%s" (include "hermod.fullname" $root) .component -}}
{{- $shutdown := int $root.Values.config.shutdownTimeoutSeconds -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "hermod.labels" $sel | nindent 4 }}
spec:
  {{- if .replicas }}
  replicas: {{ .replicas }}
  {{- end }}
  {{- with .strategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "hermod.selectorLabels" $sel | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "hermod.selectorLabels" $sel | nindent 8 }}
        {{- with $c.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- if not $root.Values.secrets.existingSecret }}
        checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
        {{- end }}
        {{- with $c.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "hermod.serviceAccountName" $root }}
      automountServiceAccountToken: false
      # Longer than HERMOD_SHUTDOWN_TIMEOUT: in-flight work drains before a kill.
      terminationGracePeriodSeconds: {{ add $shutdown (int $root.Values.config.terminationExtraSeconds) }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ printf "%s:%s" ($c.image.repository | default (printf "%s-%s" $root.Values.image.repository .component)) ($c.image.tag | default $root.Values.image.tag | default $root.Chart.AppVersion) | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          ports:
            - name: http
              containerPort: {{ .port }}
          env:
            - {name: {{ .addrEnv }}, value: {{ printf ":%d" (int .port) | quote }}}
            - {name: HERMOD_LOG_LEVEL, value: {{ $root.Values.config.logLevel | quote }}}
            - {name: HERMOD_SHUTDOWN_TIMEOUT, value: {{ printf "%ds" $shutdown | quote }}}
            {{- .env | nindent 12 }}
            {{- range $k, $v := $c.env }}
            - {name: {{ $k }}, value: {{ $v | toString | quote }}}
            {{- end }}
          startupProbe:
            httpGet: {path: /healthz, port: http}
            {{- toYaml $root.Values.probes.startup | nindent 12 }}
          livenessProbe:
            httpGet: {path: /healthz, port: http}
            {{- toYaml $root.Values.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet: {path: /readyz, port: http}
            {{- toYaml $root.Values.probes.readiness | nindent 12 }}
          resources:
            {{- toYaml $c.resources | nindent 12 }}
          {{- with $c.extraVolumeMounts }}
          volumeMounts:
            {{- toYaml . | nindent 12 }}
          {{- end }}
      {{- with $c.extraVolumes }}
      volumes:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  labels:
    {{- include "hermod.labels" $sel | nindent 4 }}
  {{- with $c.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $c.service.type | default "ClusterIP" }}
  selector:
    {{- include "hermod.selectorLabels" $sel | nindent 4 }}
  ports:
    - name: http
      port: {{ $c.service.port }}
      targetPort: http
{{- if $c.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $name }}
  labels:
    {{- include "hermod.labels" $sel | nindent 4 }}
spec:
  {{- if hasKey $c.podDisruptionBudget "minAvailable" }}
  minAvailable: {{ $c.podDisruptionBudget.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $c.podDisruptionBudget.maxUnavailable | default 1 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "hermod.selectorLabels" $sel | nindent 6 }}
{{- end }}
{{- end -}}
