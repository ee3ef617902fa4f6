# bash completion for ota and ota-agent. Options are read from the commands'
# own --help (CLI11), so they never drift from the binary.
# Install: /usr/share/bash-completion/completions/ota (the Debian package does).

_ota_options_from_help() {
  # Prints every long and short option that `$@ --help` lists.
  "$@" --help 2>/dev/null | grep -oE '(^|[ ,])--?[A-Za-z][A-Za-z0-9-]*' | sed 's/^[ ,]*//' | sort -u
}

_ota() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
  local cmd=${COMP_WORDS[0]} sub="" sub2="" i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${COMP_WORDS[i]}" in
      -*) ;;
      *) if [ -z "$sub" ]; then sub=${COMP_WORDS[i]}; elif [ -z "$sub2" ] && [ "$sub" = campaign -o "$sub" = root -o "$sub" = device ]; then sub2=${COMP_WORDS[i]}; fi ;;
    esac
  done
  case "$prev" in
    -o|--output|--key|--pub|--trust|--registry|--operator|--image|--base|--store|--dir|--config|-c|--ca|--cert|--cert-key|--password-file|--passphrase-file|--summary)
      COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  if [ -z "$sub" ]; then
    local subs
    if [ "$(basename "$cmd")" = ota-agent ]; then subs="install status boot-check commit rollback simulate-boot run"
    else subs="diff patch keygen root build sign verify inspect publish campaign device"; fi
    COMPREPLY=($(compgen -W "$subs --help --version" -- "$cur")); return
  fi
  if [ "$sub" = campaign ] && [ -z "$sub2" ]; then
    COMPREPLY=($(compgen -W "run status pause resume abort serve report" -- "$cur")); return
  fi
  if [ "$sub" = device ] && [ -z "$sub2" ]; then
    COMPREPLY=($(compgen -W "provision" -- "$cur")); return
  fi
  if [ "$sub" = root ] && [ -z "$sub2" ]; then
    COMPREPLY=($(compgen -W "init sign rotate verify show" -- "$cur")); return
  fi
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(_ota_options_from_help "$cmd" $sub $sub2)" -- "$cur")); return
  fi
  COMPREPLY=($(compgen -f -- "$cur"))
}
complete -F _ota ota ota-agent
