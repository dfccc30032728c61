{{/* Chart name, overridable. */}}
{{- define "twilio-video-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or <release> when it already contains the chart name. */}}
{{- define "twilio-video-operator.fullname" -}}
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

{{- define "twilio-video-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of the release. */}}
{{- define "twilio-video-operator.labels" -}}
helm.sh/chart: {{ include "twilio-video-operator.chart" . }}
{{ include "twilio-video-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: twilio-video-operator
{{- end }}

{{/* Labels selecting the operator pod. */}}
{{- define "twilio-video-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "twilio-video-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "twilio-video-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "twilio-video-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "twilio-video-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The URL Twilio calls back: publicBaseUrl, else the Ingress host. */}}
{{- define "twilio-video-operator.publicBaseUrl" -}}
{{- if .Values.publicBaseUrl }}
{{- .Values.publicBaseUrl | trimSuffix "/" }}
{{- else if and .Values.ingress.enabled .Values.ingress.host }}
{{- printf "%s://%s" (ternary "https" "http" .Values.ingress.tls.enabled) .Values.ingress.host }}
{{- else }}
{{- fail "publicBaseUrl is required (or enable the Ingress with a host)" }}
{{- end }}
{{- end }}

{{/* Whether the operator watches a list of namespaces rather than the whole cluster. */}}
{{- define "twilio-video-operator.namespaced" -}}
{{- if .Values.watchNamespaces }}true{{ end }}
{{- end }}

{{/* The Prometheus `job` label of the scraped Service (the Prometheus Operator uses the Service name). */}}
{{- define "twilio-video-operator.metricsJob" -}}
{{- include "twilio-video-operator.fullname" . }}
{{- end }}

{{/*
RBAC rules on the operator's namespaced resources: used by the ClusterRole (cluster mode) and by each
watched namespace's Role (namespaced mode).
*/}}
{{- define "twilio-video-operator.namespacedRules" -}}
- apiGroups: ["video.openclaw.io"]
  resources: ["videorooms", "compositions", "signingkeyrotations"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["video.openclaw.io"]
  resources: ["videorooms/status", "compositions/status", "signingkeyrotations/status"]
  verbs: ["patch"]
# A VideoRoom with recording.compose creates the Composition it owns.
- apiGroups: ["video.openclaw.io"]
  resources: ["compositions"]
  verbs: ["create"]
# Events about our objects (core/v1 Events, created once each).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
# Read credentials: credentialsRef Secrets, S3 delivery credentials and the key Secrets tokens are signed with.
# list/watch serve one watch, restricted by the API server to Secrets labelled video.openclaw.io/credentials
# (RBAC cannot express that filter): a change of one re-reconciles the VideoRooms that name it at once.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
# Write access to Secrets exists only for the Secrets that SigningKeyRotations own (spec.secretName): the
# operator writes the rotated API keys into them and deletes them with their rotation.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create", "patch", "delete"]
{{- end }}

{{/* RBAC rules that only exist cluster-wide, needed in both modes. */}}
{{- define "twilio-video-operator.clusterOnlyRules" -}}
# kopf scans CustomResourceDefinitions to find the resources it serves.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
# The token service authenticates callers (TokenReview) and authorizes them (SubjectAccessReview).
- apiGroups: ["authentication.k8s.io"]
  resources: ["tokenreviews"]
  verbs: ["create"]
- apiGroups: ["authorization.k8s.io"]
  resources: ["subjectaccessreviews"]
  verbs: ["create"]
{{- if or (include "twilio-video-operator.namespaced" .) .Values.watchNamespaceSelector }}
# Watching a set of namespaces rather than the whole cluster, kopf lists and watches namespaces to follow
# the watched ones as they are created and deleted (refused, it assumes they exist and logs the 403). A
# shard also lists the namespaces that match watchNamespaceSelector to find the ones to reconcile.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
{{- end }}
