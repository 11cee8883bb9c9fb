// Shell completion scripts generated from the command tree, so they never go stale.
import type { Command } from 'commander';

interface Node {
  readonly path: string[];
  readonly subcommands: string[];
  readonly options: string[];
}

function walk(cmd: Command, path: string[], out: Node[], globals: string[]): void {
  const options = [...globals, ...cmd.options.flatMap((o) => [o.long, o.short].filter((x): x is string => !!x)), '--help'];
  const subs = cmd.commands.map((c) => c.name());
  out.push({ path, subcommands: subs, options: [...new Set(options)] });
  for (const sub of cmd.commands) walk(sub, [...path, sub.name()], out, globals);
}

export function commandTree(program: Command): Node[] {
  const globals = program.options.flatMap((o) => [o.long, o.short].filter((x): x is string => !!x));
  const out: Node[] = [];
  walk(program, [], out, globals);
  return out;
}

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

export function completionScript(program: Command, shell: Shell): string {
  const nodes = commandTree(program);
  const name = program.name();
  switch (shell) {
    case 'bash':
    case 'zsh': {
      const cases = nodes.map((n) => `    "${n.path.join(' ')}") words="${[...n.subcommands, ...n.options].join(' ')}" ;;`).join('\n');
      const body = `_${name}_complete() {
  local cur path="" w i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case "$w" in -*) continue ;; esac
    case " $(_${name}_words "\${path# }") " in *" $w "*) path="$path $w" ;; esac
  done
  COMPREPLY=($(compgen -W "$(_${name}_words "\${path# }")" -- "$cur"))
}
_${name}_words() {
  local words=""
  case "$1" in
${cases}
  esac
  echo "$words"
}
`;
      if (shell === 'bash')
        return `# bash completion for ${name}: source <(${name} completion bash)\n${body}complete -F _${name}_complete ${name}\n`;
      return `#compdef ${name}\n# zsh completion for ${name}: source <(${name} completion zsh)\nautoload -U +X bashcompinit && bashcompinit\n${body}complete -F _${name}_complete ${name}\n`;
    }
    case 'fish': {
      const lines = [`# fish completion for ${name}: ${name} completion fish | source`, `complete -c ${name} -f`];
      for (const n of nodes) {
        const cond =
          n.path.length === 0
            ? `__fish_use_subcommand`
            : `__fish_seen_subcommand_from ${n.path[n.path.length - 1]}${n.path.length > 1 ? `; and __fish_seen_subcommand_from ${n.path[0]}` : ''}`;
        for (const sub of n.subcommands) lines.push(`complete -c ${name} -n '${cond}' -a ${sub}`);
        for (const opt of n.options.filter((o) => o.startsWith('--'))) lines.push(`complete -c ${name} -n '${cond}' -l ${opt.slice(2)}`);
      }
      return lines.join('\n') + '\n';
    }
  }
}
