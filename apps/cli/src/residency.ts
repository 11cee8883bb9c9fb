// `cairn residency report`: the boundary contract for a compliance reviewer as Markdown. The report
// itself is built in @cairn/proto from the descriptors (the control plane serves the same data to
// the console).
import type { ResidencyReport } from '@cairn/proto';

export {
  CLASS_MEANINGS,
  NEVER_CROSSES,
  buildResidencyReport,
  type ReportField,
  type ReportMessage,
  type ResidencyReport,
} from '@cairn/proto';

const cell = (s: string): string => s.replace(/\|/g, '\\|');

export function renderMarkdown(report: ResidencyReport): string {
  const out: string[] = [];
  out.push(`# ${report.title}`, '');
  out.push(
    'Generated from the protobuf descriptors of ' +
      report.files.map((f) => `\`${f}\``).join(', ') +
      '. Every field of every message the data plane sends (worker stream requests, gateway calls, and the messages nested in them) ' +
      'carries a residency class; the control plane checks each value against its class on receipt and refuses what does not fit. ' +
      'Payloads — run inputs, step outputs, signal bodies, error messages, prompts and model output — have no field here: they stay in the data plane.',
    '',
  );
  out.push('## Classes', '', '| class | what it admits | fields |', '| --- | --- | --- |');
  for (const [cls, meaning] of Object.entries(report.classes))
    out.push(`| ${cls} | ${cell(meaning)} | ${report.totals.byClass[cls] ?? 0} |`);
  out.push('', `${report.totals.messages} messages, ${report.totals.fields} fields.`, '');
  out.push('## What never crosses', '', ...report.neverCrosses.map((n) => `- ${n}`), '');
  if (report.problems.length > 0) {
    out.push('## Problems', '', ...report.problems.map((p) => `- ${p}`), '');
  }
  out.push('## Messages', '');
  for (const m of report.messages) {
    out.push(`### \`${m.message}\``, '', `Sent through ${m.via.map((v) => `\`${v}\``).join(', ')} (${m.file}).`, '');
    if (m.fields.length === 0) {
      out.push('No fields.', '');
      continue;
    }
    out.push('| # | field | type | class | bounds | carries |', '| --- | --- | --- | --- | --- | --- |');
    for (const f of m.fields) {
      const bounds = [f.maxLength ? `≤ ${f.maxLength} chars` : '', f.pattern ? `\`${cell(f.pattern)}\`` : '']
        .filter((s) => s !== '')
        .join(', ');
      out.push(
        `| ${f.number} | \`${f.field}\` | ${f.repeated ? 'repeated ' : ''}${f.type} | ${f.class} | ${bounds} | ${cell(f.carries)} |`,
      );
    }
    out.push('');
  }
  return out.join('\n');
}
