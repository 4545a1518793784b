{{/* Rendered and linted by Helm itself in tests/unit/test_helm_chart.py (helm-python-sdk). */}}

{{- define "trivium.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "trivium.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A component's name: (dict "root" $ "component" "gateway") */}}
{{- define "trivium.componentName" -}}
{{- printf "%s-%s" (include "trivium.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "trivium.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trivium.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "trivium.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{ include "trivium.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: trivium
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "trivium.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "trivium.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
A component's image: <image.repository>-<Dockerfile target>:<tag>, the tag defaulting to the
chart's appVersion (the project version the images are built from); the component's own
`image.repository` / `image.tag` win. (dict "root" $ "component" "model")
*/}}
{{- define "trivium.image" -}}
{{- $values := index .root.Values .component -}}
{{- $own := $values.image | default dict -}}
{{- $target := .component -}}
{{- if and (eq .component "model") (eq $values.engine "vllm") -}}
{{- $target = "model-vllm" -}}
{{- end -}}
{{- $repository := default (printf "%s-%s" .root.Values.image.repository $target) $own.repository -}}
{{- $tag := default (default .root.Chart.AppVersion .root.Values.image.tag) $own.tag -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}

{{/*
A dependency chart's full name, by its own rule (bitnami's "common.names.dependency.fullname",
the qdrant chart's "qdrant.fullname": the same rule), honouring the subchart's own
fullnameOverride / nameOverride: (dict "chartName" "redis" "chartValues" .Values.redis "root" $)
*/}}
{{- define "trivium.dependency.fullname" -}}
{{- if .chartValues.fullnameOverride -}}
{{- .chartValues.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .chartName .chartValues.nameOverride -}}
{{- if contains $name .root.Release.Name -}}
{{- .root.Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .root.Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The bitnami/redis chart's full name: its master Service is "<this>-master", its Secret "<this>". */}}
{{- define "trivium.redis.fullname" -}}
{{- include "trivium.dependency.fullname" (dict "chartName" "redis" "chartValues" .Values.redis "root" .) -}}
{{- end -}}

{{/* The qdrant chart's full name: its Service, port 6333 named http. */}}
{{- define "trivium.qdrant.fullname" -}}
{{- include "trivium.dependency.fullname" (dict "chartName" "qdrant" "chartValues" .Values.qdrant "root" .) -}}
{{- end -}}

{{- define "trivium.qdrant.url" -}}
{{- if .Values.qdrant.enabled -}}
{{- printf "http://%s:6333" (include "trivium.qdrant.fullname" .) -}}
{{- else -}}
{{- .Values.qdrant.externalUrl -}}
{{- end -}}
{{- end -}}

{{/* Env vars every service gets: its settings file, writable caches, Redis. */}}
{{- define "trivium.commonEnv" -}}
- name: TRIVIUM_CONFIG
  value: /etc/trivium/config/trivium.yaml
- name: HOME
  value: /tmp
- name: XDG_CACHE_HOME
  value: /tmp/.cache
- name: PYTHONUNBUFFERED
  value: "1"
{{- if .Values.redis.enabled }}
{{- if .Values.redis.auth.enabled }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ default (include "trivium.redis.fullname" .) .Values.redis.auth.existingSecret }}
      key: {{ default "redis-password" .Values.redis.auth.existingSecretPasswordKey }}
- name: TRIVIUM_REDIS__URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s-master:6379/0" (include "trivium.redis.fullname" .) | quote }}
{{- else }}
- name: TRIVIUM_REDIS__URL
  value: {{ printf "redis://%s-master:6379/0" (include "trivium.redis.fullname" .) | quote }}
{{- end }}
{{- else if .Values.redis.urlSecret.name }}
- name: TRIVIUM_REDIS__URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.urlSecret.name }}
      key: {{ .Values.redis.urlSecret.key }}
{{- else if .Values.redis.externalUrl }}
- name: TRIVIUM_REDIS__URL
  value: {{ .Values.redis.externalUrl | quote }}
{{- else }}
{{- fail "redis: set redis.enabled, redis.externalUrl or redis.urlSecret.name (the embedded Redis is per pod)" }}
{{- end }}
{{- end -}}

{{/* (dict "prefix" "TRIVIUM_GATEWAY__ADMIN_TOKENS__" "tokens" .Values.gateway.adminTokens) */}}
{{- define "trivium.adminTokenEnv" -}}
{{- $prefix := .prefix -}}
{{- range .tokens }}
- name: {{ printf "%s%s" $prefix .actor }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .secretKey }}
{{- end }}
{{- end -}}

{{/* Probes on the container port named http: (svc values) */}}
{{- define "trivium.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  {{- toYaml .probes.startup | nindent 2 }}
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  {{- toYaml .probes.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  {{- toYaml .probes.readiness | nindent 2 }}
{{- end -}}

{{- define "trivium.lifecycle" -}}
lifecycle:
  preStop:
    {{- if .Values.lifecycle.useSleepAction }}
    sleep:
      seconds: {{ .Values.lifecycle.preStopSleepSeconds }}
    {{- else }}
    exec:
      command: ["sleep", {{ .Values.lifecycle.preStopSleepSeconds | quote }}]
    {{- end }}
{{- end -}}

{{/* Scheduling and pod-level settings shared by the Deployments: (svc values) + root */}}
{{- define "trivium.podCommon" -}}
serviceAccountName: {{ include "trivium.serviceAccountName" .root }}
automountServiceAccountToken: false
terminationGracePeriodSeconds: {{ .svc.terminationGracePeriodSeconds }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .svc.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .svc.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Volumes every service mounts: settings, data, /tmp */}}
{{- define "trivium.commonVolumes" -}}
- name: config
  configMap:
    name: {{ include "trivium.componentName" . }}-config
- name: data
  {{- if .svc.persistence.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .svc.persistence.existingClaim }}
  {{- else }}
  emptyDir: {}
  {{- end }}
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "trivium.commonMounts" -}}
- name: config
  mountPath: /etc/trivium/config
  readOnly: true
- name: data
  mountPath: {{ .root.Values.dataDir }}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* The top of every service's settings file. */}}
{{- define "trivium.commonSettings" -}}
data_dir: {{ .Values.dataDir }}
log:
  level: {{ .Values.log.level }}
  format: {{ .Values.log.format }}
registry:
  key_prefix: {{ .Values.registry.keyPrefix | quote }}
{{- end -}}

{{/* The /readyz URL of every Trivium Service, space-separated (the readyz test pod). */}}
{{- define "trivium.testReadyzUrls" -}}
{{- $urls := list -}}
{{- range $component := list "gateway" "retriever" "model" -}}
{{- $svc := index $.Values $component -}}
{{- if or (ne $component "model") $svc.enabled -}}
{{- $urls = append $urls (printf "http://%s-%s:%v/readyz" (include "trivium.fullname" $) $component $svc.service.port) -}}
{{- end -}}
{{- end -}}
{{- join " " $urls -}}
{{- end -}}

{{/* Pod-level settings of the `helm test` pods. */}}
{{- define "trivium.testPodSpec" -}}
restartPolicy: Never
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: tmp
    emptyDir: {}
{{- end -}}

{{/* Container settings of the `helm test` pods: read-only root, /tmp writable. */}}
{{- define "trivium.testContainerCommon" -}}
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
resources:
  {{- toYaml .Values.tests.resources | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end -}}
