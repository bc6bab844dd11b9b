# Sourced by the scripts that build hindsight (test.sh, quickstart.sh, install.sh, bench.sh):
# links a current liblsl where scripts/get-liblsl.sh can get one, else the liblsl 1.13.1
# that lsl-sys bundles, said loudly. Sets:
#   LIBLSL_CARGO   cargo's arguments for it (an array: empty for the bundled 1.13)
#   LIBLSL_LIB     the library's folder (empty for the bundled 1.13, which is linked in)
# and, with a current liblsl, LD_LIBRARY_PATH for running what was built.
LIBLSL_CARGO=()
LIBLSL_LIB=""
if _liblsl_out=$(bash "$(dirname "${BASH_SOURCE[0]}")/get-liblsl.sh") &&
   _liblsl_prefix=$(printf '%s\n' "$_liblsl_out" | tail -1) &&
   [ -f "$_liblsl_prefix/env.sh" ] && [ -f "$_liblsl_prefix/cargo.toml" ]; then
  # shellcheck source=/dev/null
  . "$_liblsl_prefix/env.sh"
  LIBLSL_CARGO=(--config "$_liblsl_prefix/cargo.toml")
  LIBLSL_LIB="$_liblsl_prefix/lib"
  echo "liblsl: $(basename "$_liblsl_prefix") from $_liblsl_prefix" >&2
else
  echo "liblsl: lsl-sys's bundled liblsl 1.13.1 (built from source; see above why not a current one)" >&2
fi
unset _liblsl_out _liblsl_prefix
