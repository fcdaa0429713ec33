#!/usr/bin/env bash
# make demo-helios: the canvas example composition (examples/compositions)
# rendered in chunks by `helios job run` from its Helios-form spec, then in
# one pass by the same renderer with the same options, and the two compared
# frame for frame.
set -euo pipefail
cd "$(dirname "$0")/.."
spec=examples/jobs/helios-canvas.json
export PATH="$PWD/renderers/helios/bin:$PATH" HELIOS_ALLOWED_COMMANDS=ffmpeg,helios
mkdir -p out
rm -rf out/.demo-helios-storage out/helios.mp4 out/helios-one-pass.mp4

now() { local t=${EPOCHREALTIME/./}; echo "${t#0}"; }
t0=$(now)
bin/helios job run "$spec" --assets examples/compositions --out out/helios.mp4 --storage out/.demo-helios-storage
t1=$(now)

# The chunks' command without its range and output: the whole video at once.
read -r -a args < <(node -e '
  const words = require(process.argv[1]).chunks[0].command.split(/\s+/).slice(2);
  const out = [];
  for (let i = 0; i < words.length; i++) {
    if (["-o", "--start-frame", "--frame-count"].includes(words[i])) i++; else out.push(words[i]);
  }
  console.log(out.join(" "));' "$PWD/$spec")
(cd examples/compositions && helios render "${args[@]}" -o ../../out/helios-one-pass.mp4)
t2=$(now)

frames() { ffmpeg -v error -i "$1" -map 0:v -f framemd5 - | grep -v '^#' | awk -F, '{print $NF}'; }
total=$(frames out/helios.mp4 | wc -l)
same=$( ((total > 0)) && diff <(frames out/helios.mp4) <(frames out/helios-one-pass.mp4) >/dev/null && echo "identical" || echo "DIFFERENT")
awk -v c="$((t1 - t0))" -v o="$((t2 - t1))" -v n="$total" -v same="$same" 'BEGIN {
  printf "\nchunked:   %.2f s (helios job run: chunks rendered side by side, then joined)\n", c / 1e6
  printf "one pass:  %.2f s (helios render over all %d frames)\n", o / 1e6, n
  printf "ratio:     %.2fx the one-pass time\n", c / o
  printf "frames:    %d, %s to the one-pass render\n", n, same
  printf "video:     out/helios.mp4\n"
  exit (same == "identical" ? 0 : 1)
}'
