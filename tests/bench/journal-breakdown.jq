# cutover journal (JSON lines, slurped with jq -s) → the phase breakdown as TSV lines:
#   wall <seconds>
#   step <id> <seconds>
#   kind <name> <count> <busy seconds: union of its intervals> <sum of its durations>
#   gate <name> <count> <seconds> <shortest read, ms> <longest read, ms>
#   window <seconds>   (first lb.ready done → last lb.drain done; absent with < 2 nodes)
def ts: (.[0:19] + "Z" | fromdateiso8601)
  + ((capture("\\.(?<f>[0-9]+)") | .f | "0." + . | tonumber) // 0);
def busy: sort_by(.[0])
  | reduce .[] as $i ([];
      if length > 0 and $i[0] <= .[-1][1]
      then .[-1][1] = ([.[-1][1], $i[1]] | max)
      else . + [$i] end)
  | map(.[1] - .[0]) | add // 0;
def r2: . * 100 | round / 100;
def kind_of($gates):
  if .action == "probe" then (if $gates[.op | tostring] then "gate reads" else "probes (explicit)" end)
  elif (.action | test("create_jws_keypair|install_jws_keys|distribute_public_keys"))
    then "keys: " + (.action | sub("keystone\\."; ""))
  elif .action == "service.restart" then "restarts"
  elif .action == "keystone.set_provider" then "set_provider"
  elif .action == "lb.drain" then "drains"
  elif .action == "lb.ready" then "re-adds"
  else .action end;
. as $all
| ([$all[] | select(.kind == "gate_passed" or .kind == "gate_failed" or .kind == "hard_stop_raised")
    | {key: (.data.op | tostring), value: (.data.gate // .data.id // "?")}] | from_entries) as $gates
| ([$all[] | select(.kind == "intent") | {key: (.data.id | tostring), value: {action: .data.action, op: .data.op, node: .node, start: (.time | ts)}}]
    | from_entries) as $intents
| [$all[] | select(.kind == "outcome") | ($intents[.data.id | tostring]) as $i | select($i != null)
    | $i + {end: (.time | ts), ms: (.data.duration_ms // 0)}] as $acts
| ([$all[] | select(.kind == "run_started")][0].time | ts) as $t0
| ([$all[] | select(.kind == "run_completed" or .kind == "run_paused" or .kind == "run_halted")] | last | .time | ts) as $t1
| "wall\t\($t1 - $t0 | r2)",
  ([$all[] | select(.kind == "step_started" or .kind == "step_completed")] | group_by(.step)
    | sort_by(map(.seq) | min)[]
    | "step\t\(.[0].step)\t\((map(select(.kind == "step_completed").time | ts) | max) - (map(select(.kind == "step_started").time | ts) | min) | r2)"),
  ($acts | map(. + {k: kind_of($gates)}) | group_by(.k) | sort_by(-(map([.start, .end]) | busy))[]
    | "kind\t\(.[0].k)\t\(length)\t\(map([.start, .end]) | busy | r2)\t\(map(.ms) | add / 1000 | r2)"),
  ($acts | map(select(.action == "probe" and $gates[.op | tostring])) | map(. + {g: $gates[.op | tostring]})
    | group_by(.g) | sort_by(-(map(.end - .start) | add))[]
    | "gate\t\(.[0].g)\t\(length)\t\(map(.end - .start) | add | r2)\t\(map(.end - .start) | min * 1000 | round)\t\(map(.end - .start) | max * 1000 | round)"),
  ("other\tengine, answers and journal (wall − busy of every action)\t\($t1 - $t0 - ($acts | map([.start, .end]) | busy) | r2)"),
  ([$acts[] | select(.action == "lb.ready")] | map(.end) | min) as $first_readd
  | ([$acts[] | select(.action == "lb.drain")] | map(.end) | max) as $last_drain
  | if $first_readd != null and $last_drain != null and $last_drain > $first_readd
    then "window\t\($last_drain - $first_readd | r2)" else empty end
