// The "Examples:" block every command's --help ends with.

/** Formats `[description, command]` pairs for `addHelpText('after', …)`. */
export function examples(list: ReadonlyArray<readonly [string, string]>): string {
  return `\nExamples:\n${list.map(([what, cmd]) => `  # ${what}\n  $ ${cmd}`).join('\n')}\n`;
}
