{{/*
Names. One release is one testnet; every object name starts with the release name so that two
testnets can share a namespace without colliding (a namespace per run is still the default).
*/}}
{{- define "harness.fullname" -}}
{{- if not (regexMatch "^[a-z]" .Release.Name) -}}
{{- fail (printf "release name %q: must start with a letter (it prefixes Service names, which are DNS-1035 labels)" .Release.Name) -}}
{{- end -}}
{{- /* The StatefulSet controller labels pods with "<sts>-<10-char hash>", a label value of at most
63 characters: release (≤ 31) + "-" + group (≤ 20, values.schema.json) fits 52. Refused, not
truncated: two truncated names could collide. */ -}}
{{- if gt (len .Release.Name) 31 -}}
{{- fail (printf "release name %q: at most 31 characters (StatefulSet names are <release>-<group> and must fit 52)" .Release.Name) -}}
{{- end -}}
{{- .Release.Name -}}
{{- end -}}

{{/*
The run's labels. harness.io/* are what the harness selects on (`labels_for(run, member)` in the
backend); app.kubernetes.io/* are the conventional ones tools understand.
Call with (dict "ctx" $ "member" NAME "role" ROLE "component" COMPONENT).
*/}}
{{- define "harness.labels" -}}
{{ include "harness.selectorLabels" . }}
harness.io/run: {{ .ctx.Values.run | quote }}
harness.io/member: {{ .member | quote }}
harness.io/role: {{ .role | quote }}
app.kubernetes.io/name: harness
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | quote }}
{{- end -}}

{{/* Selector labels: immutable in a StatefulSet/Deployment, so only what never changes. */}}
{{- define "harness.selectorLabels" -}}
app.kubernetes.io/instance: {{ .ctx.Release.Name | quote }}
app.kubernetes.io/component: {{ .component | quote }}
{{- end -}}

{{/* Labels that select every pod of this release (NetworkPolicy peers). */}}
{{- define "harness.releaseSelector" -}}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{- define "harness.tokenSecret" -}}
{{- if .Values.controlToken.existingSecret -}}
{{- .Values.controlToken.existingSecret -}}
{{- else -}}
{{- printf "%s-token" (include "harness.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "harness.image" -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}

{{/* The hardened container securityContext every harness container runs with. */}}
{{- define "harness.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
The node groups: every entry of .Values.groups (role honest) and .Values.attackers (role
attacker), each packed into pods of `nodesPerPod` members: pod i hosts members[i*N:(i+1)*N].
Returns JSON: a list of {name, role, kind, sts, nodesPerPod, resources, pods: [{name, members}],
chunks: [[pod name, ...], ...]}. The pod configs are dealt greedily into ConfigMap chunks of at
most .Values.configMapMaxBytes bytes of JSON (a ConfigMap holds at most 1 MiB), so a group of any
size renders; each pod mounts all its group's chunks (a projected volume) and reads its own file,
named after its stable StatefulSet name.
Checks the data model beyond what the JSON schema can say (unique names and ports), and fails
naming the field.
*/}}
{{- define "harness.groups" -}}
{{- $ctx := . -}}
{{- $full := include "harness.fullname" . -}}
{{- $out := list -}}
{{- $seenNames := dict -}}
{{- $seenGroups := dict -}}
{{- $all := list -}}
{{- range $gi, $g := .Values.groups }}{{ $all = append $all (dict "g" $g "role" "honest" "field" (printf "groups[%d]" $gi)) }}{{ end -}}
{{- range $ai, $g := .Values.attackers }}{{ $all = append $all (dict "g" $g "role" "attacker" "field" (printf "attackers[%d]" $ai)) }}{{ end -}}
{{- range $entry := $all -}}
{{- $g := $entry.g -}}
{{- if hasKey $seenGroups $g.name -}}{{- fail (printf "%s.name: %q is used by another group or attacker; names must be unique" $entry.field $g.name) -}}{{- end -}}
{{- $_ := set $seenGroups $g.name true -}}
{{- $n := int ($g.nodesPerPod | default $ctx.Values.nodesPerPod) -}}
{{- $sts := printf "%s-%s" $full $g.name -}}
{{- $pods := list -}}
{{- $chunks := list -}}
{{- $cur := list -}}
{{- $curBytes := 0 -}}
{{- $members := $g.members -}}
{{- $count := len $members -}}
{{- $replicas := div (add $count (sub $n 1)) $n -}}
{{- range $p := until (int $replicas) -}}
{{- $podName := printf "%s-%d" $sts $p -}}
{{- $start := mul $p $n -}}
{{- $end := min (add $start $n) $count -}}
{{- $podMembers := slice $members (int $start) (int $end) -}}
{{- $ports := dict -}}
{{- $nodes := list -}}
{{- range $k, $m := $podMembers -}}
{{- $field := printf "%s.members[%d]" $entry.field (add $start $k) -}}
{{- if hasKey $seenNames $m.name -}}{{- fail (printf "%s.name: node name %q is used twice; names must be unique in a release" $field $m.name) -}}{{- end -}}
{{- $_ := set $seenNames $m.name true -}}
{{- range $pf := list "port" "controlPort" -}}
{{- $pv := toString (index $m $pf) -}}
{{- if hasKey $ports $pv -}}{{- fail (printf "%s.%s: port %s is already used by another node of pod %s (nodes packed in one pod need distinct ports)" $field $pf $pv $podName) -}}{{- end -}}
{{- $_ := set $ports $pv true -}}
{{- end -}}
{{- /* Members in slot k of every pod share slot k's ports: the headless Service names them once. */ -}}
{{- $first := index $members $k -}}
{{- if or (ne (int $first.port) (int $m.port)) (ne (int $first.controlPort) (int $m.controlPort)) -}}
{{- fail (printf "%s: port %v/controlPort %v differ from %s.members[%d] (%v/%v): the node in slot %d of every pod must use the same ports" $field $m.port $m.controlPort $entry.field $k $first.port $first.controlPort $k) -}}
{{- end -}}
{{- /* The chart owns where a node listens and keeps its data; the plan owns the rest. */ -}}
{{- $own := dict "name" $m.name "bind" "0.0.0.0" "port" (int $m.port) "control_bind" "0.0.0.0" "control_port" (int $m.controlPort) "datadir" (printf "/var/lib/harness-node/%s" $m.name) "extra" (dict "address" $m.address "group" $g.name) -}}
{{- $nodes = append $nodes (merge $own (deepCopy ($m.config | default dict))) -}}
{{- end -}}
{{- $body := toJson (dict "nodes" $nodes) -}}
{{- $size := add (len $body) (len $podName) 16 -}}
{{- if gt (int $size) (int $ctx.Values.configMapMaxBytes) -}}
{{- fail (printf "%s: the config of pod %s is %d bytes, more than configMapMaxBytes (%d); lower nodesPerPod" $entry.field $podName $size (int $ctx.Values.configMapMaxBytes)) -}}
{{- end -}}
{{- if and (gt (len $cur) 0) (gt (add $curBytes $size) (int $ctx.Values.configMapMaxBytes)) -}}
{{- $chunks = append $chunks $cur -}}
{{- $cur = list -}}
{{- $curBytes = 0 -}}
{{- end -}}
{{- $cur = append $cur $podName -}}
{{- $curBytes = add $curBytes $size -}}
{{- $pods = append $pods (dict "name" $podName "members" $podMembers "config" $body) -}}
{{- end -}}
{{- if gt (len $cur) 0 }}{{ $chunks = append $chunks $cur }}{{ end -}}
{{- $slots := list -}}
{{- if gt $count 0 }}{{ $slots = slice $members 0 (int (min $n $count)) }}{{ end -}}
{{- $digest := "" -}}
{{- range $pod := $pods }}{{ $digest = sha256sum (print $digest $pod.config) }}{{ end -}}
{{- $out = append $out (dict "digest" $digest "name" $g.name "role" $entry.role "kind" ($g.kind | default "") "sts" $sts "replicas" $replicas "resources" ($g.resources | default $ctx.Values.resources.node) "pods" $pods "chunks" $chunks "slots" $slots) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}
