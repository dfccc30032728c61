{{/*
The chart never takes Twilio credential values: they belong in the Secret named by
credentials.existingSecret, not in the release (Helm stores values in it, and they would show in the
Deployment). Anywhere in the values this refuses, naming the value and why:
- an extraEnv entry for a credential variable with a literal `value`;
- a key named like a credential setting (TWILIO_AUTH_TOKEN, authToken, apiSecret, ...) holding a string;
- a string holding an Account SID or API key SID (AC/SK and 32 hex digits), or shaped like an Auth Token
  (32 lowercase hex digits) or an API key secret (32 letters and digits, mixing cases and digits).
credentials.keys holds the key names of the Secret, not values, and is left out.
*/}}
{{- define "twilio-video-operator.credentialVariables" -}}
TWILIO_ACCOUNT_SID TWILIO_API_KEY TWILIO_API_SECRET TWILIO_AUTH_TOKEN
{{- end }}

{{- define "twilio-video-operator.refuseCredentialValues" -}}
{{- $variables := splitList " " (include "twilio-video-operator.credentialVariables" .) }}
{{- range $index, $env := .Values.extraEnv }}
{{- if and (has $env.name $variables) (hasKey $env "value") }}
{{- fail (printf "extraEnv[%d] sets %s to a literal value: Twilio credentials are never chart values (Helm keeps values in the release, and the Deployment would show it). Put it in the Secret named by credentials.existingSecret, from which the chart sets %s, or use valueFrom.secretKeyRef" $index $env.name $env.name) }}
{{- end }}
{{- end }}
{{- include "twilio-video-operator.refuseCredentialsIn" (dict "path" "" "value" (omit .Values "credentials")) }}
{{- include "twilio-video-operator.refuseCredentialsIn" (dict "path" "credentials" "value" (omit .Values.credentials "keys")) }}
{{- end }}

{{- define "twilio-video-operator.refuseCredentialsIn" -}}
{{- $path := .path }}
{{- $why := "Twilio credentials are never chart values (Helm keeps values in the release); put them in the Secret named by credentials.existingSecret" }}
{{- if kindIs "map" .value }}
{{- range $key, $child := .value }}
{{- $at := ternary (toString $key) (printf "%s.%s" $path $key) (eq $path "") }}
{{- $name := regexReplaceAll "[^a-z0-9]" (lower (toString $key)) "" }}
{{- if and (has $name (list "twilioaccountsid" "twilioapikey" "twilioapisecret" "twilioauthtoken" "authtoken" "apisecret")) (kindIs "string" $child) (ne $child "") }}
{{- fail (printf "%s holds a value for a Twilio credential setting: %s" $at $why) }}
{{- end }}
{{- include "twilio-video-operator.refuseCredentialsIn" (dict "path" $at "value" $child) }}
{{- end }}
{{- else if kindIs "slice" .value }}
{{- range $index, $child := .value }}
{{- include "twilio-video-operator.refuseCredentialsIn" (dict "path" (printf "%s[%d]" $path $index) "value" $child) }}
{{- end }}
{{- else if kindIs "string" .value }}
{{- $text := .value }}
{{- if regexMatch "(AC|SK)[0-9a-fA-F]{32}" $text }}
{{- fail (printf "%s holds a Twilio Account SID or API key SID: %s" $path $why) }}
{{- else if regexMatch "^[0-9a-f]{32}$" $text }}
{{- fail (printf "%s looks like a Twilio Auth Token (32 hexadecimal digits): %s" $path $why) }}
{{- else if and (regexMatch "^[A-Za-z0-9]{32}$" $text) (regexMatch "[A-Z]" $text) (regexMatch "[a-z]" $text) (regexMatch "[0-9]" $text) }}
{{- fail (printf "%s looks like a Twilio API key secret (32 letters and digits): %s" $path $why) }}
{{- end }}
{{- end }}
{{- end }}
