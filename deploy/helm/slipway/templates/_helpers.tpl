{{/*
Names, labels and the pieces every workload shares (environment, volumes,
security contexts). A "component" is one Deployment: `all` in mode all,
`registry` and `serving` in mode split; its values are .Values.<component>.
*/}}

{{- define "slipway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "slipway.fullname" -}}
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

{{/* Object name of a component: <fullname>-<component>. */}}
{{- define "slipway.componentName" -}}
{{- printf "%s-%s" (include "slipway.fullname" .root | trunc 50 | trimSuffix "-") .component -}}
{{- end -}}

{{- define "slipway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "slipway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "slipway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "slipway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: slipway
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of a component's objects; call with (dict "root" $ "component" "serving"). */}}
{{- define "slipway.componentLabels" -}}
{{ include "slipway.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "slipway.componentSelectorLabels" -}}
{{ include "slipway.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Components of this release, as a JSON list: ["all"] or ["registry","serving"]. */}}
{{- define "slipway.components" -}}
{{- $c := list -}}
{{- if eq .Values.mode "all" -}}
{{- $c = append $c "all" -}}
{{- else -}}
{{- if .Values.registry.enabled }}{{ $c = append $c "registry" }}{{ end -}}
{{- if .Values.serving.enabled }}{{ $c = append $c "serving" }}{{ end -}}
{{- end -}}
{{- toJson $c -}}
{{- end -}}

{{- define "slipway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "slipway.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create=false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image reference: repository@digest, or repository:tag (tag defaults to appVersion). */}}
{{- define "slipway.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- $tag := default .Chart.AppVersion $img.tag | toString -}}
{{- if eq (lower $tag) "latest" -}}
{{- fail "image.tag: `latest` is not allowed; use a version tag or image.digest" -}}
{{- end -}}
{{- printf "%s:%s" $img.repository $tag -}}
{{- end -}}
{{- end -}}

{{/*
checkov skip annotations, each with its justification, for objects that run
the Slipway image (checkov reads `checkov.io/skipN: CHECK_ID=reason`).
*/}}
{{- define "slipway.checkovSkips" -}}
{{- $n := 0 -}}
{{- $secretEnv := or (eq .root.Values.metadata.backend "postgres") (eq .root.Values.artifacts.backend "s3") (and .backup (eq (include "slipway.backupOwnS3" .root) "true")) -}}
{{- with .root }}
{{- if eq .Values.image.pullPolicy "IfNotPresent" }}
{{- $n = add1 $n }}
checkov.io/skip{{ $n }}: "CKV_K8S_15=imagePullPolicy IfNotPresent is deliberate: the image is a version tag or a digest (the chart refuses latest), so Always only adds a registry round trip to every pod start"
{{- end }}
{{- if $secretEnv }}
{{- $n = add1 $n }}
checkov.io/skip{{ $n }}: "CKV_K8S_35=Slipway reads metadata_url and the S3 key pair from environment variables only (no *_FILE variant yet); they come from existing Secrets via secretKeyRef, and the admin token is mounted as a file"
{{- end }}
{{- if not .Values.image.digest }}
{{- $n = add1 $n }}
checkov.io/skip{{ $n }}: "CKV_K8S_43=The default install uses the version tag (appVersion, never latest); set image.digest to pin the digest, which the chart then uses instead of the tag"
{{- end }}
{{- end }}
{{- end -}}

{{/* "true" when backups are on and go to an s3:// destination. */}}
{{- define "slipway.backupToS3" -}}
{{- if and .Values.backup.enabled (hasPrefix "s3://" .Values.backup.destination) -}}true{{- end -}}
{{- end -}}

{{/*
"true" when the backup job needs S3 settings of its own: an s3:// destination
while the artifacts are not on S3 (with artifacts on S3 the job has the artifact
store's endpoint and key pair already; one S3 configuration per process).
*/}}
{{- define "slipway.backupOwnS3" -}}
{{- if and (eq (include "slipway.backupToS3" .) "true") (ne .Values.artifacts.backend "s3") -}}true{{- end -}}
{{- end -}}

{{/* The backup job's S3 variables for its destination (see slipway.backupOwnS3). */}}
{{- define "slipway.backupS3Env" -}}
{{- $b := .Values.backup.s3 -}}
- name: SLIPWAY_S3_REGION
  value: {{ $b.region | quote }}
{{- if $b.endpoint }}
- name: SLIPWAY_S3_ENDPOINT
  value: {{ $b.endpoint | quote }}
{{- end }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $b.existingSecret | quote }}
      key: {{ $b.accessKeyIdKey | quote }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $b.existingSecret | quote }}
      key: {{ $b.secretAccessKeyKey | quote }}
{{- if $b.sessionTokenKey }}
- name: AWS_SESSION_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $b.existingSecret | quote }}
      key: {{ $b.sessionTokenKey | quote }}
{{- end }}
{{- end -}}

{{/* terminationGracePeriodSeconds: preStop sleep + drain + a margin. */}}
{{- define "slipway.terminationGrace" -}}
{{- add .Values.shutdown.preStopSleepSeconds .Values.shutdown.drainSeconds 5 -}}
{{- end -}}

{{- define "slipway.usesPVC" -}}
{{- if and (eq .Values.mode "all") (or (eq .Values.metadata.backend "sqlite") (eq .Values.artifacts.backend "local")) -}}true{{- end -}}
{{- end -}}

{{- define "slipway.pvcName" -}}
{{- default (printf "%s-data" (include "slipway.fullname" .)) .Values.persistence.existingClaim -}}
{{- end -}}

{{/* Environment of a Slipway container; call with (dict "root" $ "role" "serving"). */}}
{{- define "slipway.env" -}}
{{- $v := .root.Values -}}
- name: SLIPWAY_ROLE
  value: {{ .role | quote }}
- name: SLIPWAY_LISTEN
  value: "0.0.0.0:8080"
- name: SLIPWAY_DATA_DIR
  value: /var/lib/slipway
- name: SLIPWAY_MODEL_CACHE_DIR
  value: /var/cache/slipway/models
- name: SLIPWAY_LOG_FORMAT
  value: json
- name: SLIPWAY_LOG_LEVEL
  value: {{ $v.config.logLevel | quote }}
- name: SLIPWAY_SHUTDOWN_GRACE_SECONDS
  value: {{ $v.shutdown.drainSeconds | quote }}
- name: SLIPWAY_DEPLOYMENT_POLL_MS
  value: {{ $v.config.deploymentPollMs | quote }}
- name: SLIPWAY_TOKEN_CACHE_SECONDS
  value: {{ $v.config.tokenCacheSeconds | quote }}
- name: SLIPWAY_METRICS_REQUIRE_TOKEN
  value: {{ $v.config.metricsRequireToken | quote }}
- name: SLIPWAY_INTRA_OP_THREADS
  value: {{ $v.config.intraOpThreads | quote }}
{{- if or (eq .role "serving") (not $v.demo.enabled) }}
- name: SLIPWAY_NO_DEMO
  value: "true"
{{- end }}
{{- if eq $v.metadata.backend "postgres" }}
- name: SLIPWAY_METADATA_URL
  valueFrom:
    secretKeyRef:
      name: {{ $v.metadata.postgres.existingSecret | quote }}
      key: {{ $v.metadata.postgres.urlKey | quote }}
{{- end }}
{{- if eq $v.artifacts.backend "s3" }}
{{- $s3 := $v.artifacts.s3 }}
- name: SLIPWAY_ARTIFACT_ROOT
  value: {{ printf "s3://%s/%s" $s3.bucket ($s3.prefix | trimAll "/") | trimSuffix "/" | quote }}
- name: SLIPWAY_S3_REGION
  value: {{ $s3.region | quote }}
{{- if $s3.endpoint }}
- name: SLIPWAY_S3_ENDPOINT
  value: {{ $s3.endpoint | quote }}
{{- end }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $s3.existingSecret | quote }}
      key: {{ $s3.accessKeyIdKey | quote }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s3.existingSecret | quote }}
      key: {{ $s3.secretAccessKeyKey | quote }}
{{- if $s3.sessionTokenKey }}
- name: AWS_SESSION_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $s3.existingSecret | quote }}
      key: {{ $s3.sessionTokenKey | quote }}
{{- end }}
{{- end }}
{{- if $v.adminToken.existingSecret }}
- name: SLIPWAY_ADMIN_TOKEN_FILE
  value: {{ printf "/var/run/secrets/slipway/admin/%s" $v.adminToken.key | quote }}
{{- end }}
{{- with $v.config.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "slipway.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "slipway.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Volume mounts and volumes; call with (dict "root" $ "persistent" true|false). */}}
{{- define "slipway.volumeMounts" -}}
- name: data
  mountPath: /var/lib/slipway
- name: model-cache
  mountPath: /var/cache/slipway
- name: tmp
  mountPath: /tmp
{{- if .root.Values.adminToken.existingSecret }}
- name: admin-token
  mountPath: /var/run/secrets/slipway/admin
  readOnly: true
{{- end }}
{{- end -}}

{{- define "slipway.volumes" -}}
{{- $v := .root.Values -}}
- name: data
{{- if .persistent }}
  persistentVolumeClaim:
    claimName: {{ include "slipway.pvcName" .root }}
{{- else }}
  emptyDir:
    sizeLimit: 64Mi
{{- end }}
- name: model-cache
  emptyDir:
    sizeLimit: {{ $v.modelCache.sizeLimit }}
- name: tmp
  emptyDir:
    sizeLimit: {{ $v.tmp.sizeLimit }}
{{- if $v.adminToken.existingSecret }}
- name: admin-token
  secret:
    secretName: {{ $v.adminToken.existingSecret | quote }}
    defaultMode: 0440
    items:
      - key: {{ $v.adminToken.key | quote }}
        path: {{ $v.adminToken.key | quote }}
{{- end }}
{{- end -}}

{{/*
Cross-field checks that values.schema.json cannot express clearly; each
failure names the setting to change.
*/}}
{{- define "slipway.validate" -}}
{{- $v := .Values -}}
{{- if $v.networkPolicy.enabled -}}
{{- if and (eq $v.metadata.backend "postgres") (not (or $v.networkPolicy.egress.postgres.cidrs $v.networkPolicy.egress.postgres.peers)) -}}
{{- fail "networkPolicy.egress.postgres: give cidrs or peers for PostgreSQL (metadata.backend=postgres), or set networkPolicy.enabled=false" -}}
{{- end -}}
{{- if and (eq $v.artifacts.backend "s3") (not (or $v.networkPolicy.egress.s3.cidrs $v.networkPolicy.egress.s3.peers)) -}}
{{- fail "networkPolicy.egress.s3: give cidrs or peers for the S3 endpoint (artifacts.backend=s3), or set networkPolicy.enabled=false" -}}
{{- end -}}
{{- if and (eq (include "slipway.backupToS3" .) "true") (not (or $v.networkPolicy.egress.s3.cidrs $v.networkPolicy.egress.s3.peers)) -}}
{{- fail "networkPolicy.egress.s3: give cidrs or peers for the S3 endpoint of backup.destination (s3://), or set networkPolicy.enabled=false" -}}
{{- end -}}
{{- end -}}
{{- if eq (include "slipway.backupOwnS3" .) "true" -}}
{{- if not $v.backup.s3.existingSecret -}}
{{- fail "backup.s3.existingSecret: backup.destination is on S3 and the artifacts are not, so the backup job needs the destination's key pair from an existing Secret" -}}
{{- end -}}
{{- else if and (eq $v.artifacts.backend "s3") (or $v.backup.s3.existingSecret $v.backup.s3.endpoint) -}}
{{- fail "backup.s3: with artifacts.backend=s3 the backup job uses the artifact store's S3 endpoint and key pair (one S3 configuration per process); leave backup.s3.existingSecret and backup.s3.endpoint empty" -}}
{{- end -}}
{{- if and $v.serviceMonitor.enabled $v.config.metricsRequireToken (not $v.serviceMonitor.tokenSecret.name) -}}
{{- fail "serviceMonitor.tokenSecret.name: /metrics needs a read token while config.metricsRequireToken=true" -}}
{{- end -}}
{{- if eq (include "slipway.components" . | fromJsonArray | len) 0 -}}
{{- fail "mode split needs registry.enabled or serving.enabled" -}}
{{- end -}}
{{- end -}}
