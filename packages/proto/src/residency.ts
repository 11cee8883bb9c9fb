import type { DescField, DescFile, DescMessage, Message } from '@bufbuild/protobuf';
import { ScalarType } from '@bufbuild/protobuf';
import { getOption, hasOption } from '@bufbuild/protobuf';
import { ResidencyClass, residency } from './gen/cairn/options/v1/residency_pb.js';
import { file_cairn_gateway_v1_gateway } from './gen/cairn/gateway/v1/gateway_pb.js';
import { file_cairn_run_v1_run } from './gen/cairn/run/v1/run_pb.js';
import { file_cairn_worker_v1_worker } from './gen/cairn/worker/v1/worker_pb.js';

/** The files whose messages cross between the planes. */
export const contractFiles: readonly DescFile[] = [file_cairn_run_v1_run, file_cairn_worker_v1_worker, file_cairn_gateway_v1_gateway];

/** The residency rule of one field. */
export interface FieldRule {
  readonly field: DescField;
  readonly class: ResidencyClass;
  readonly maxLength: number;
  readonly pattern: RegExp | undefined;
}

const rules = new Map<DescField, FieldRule>();

/** The classification of a field, or undefined when it has none. */
export function fieldRule(field: DescField): FieldRule | undefined {
  const cached = rules.get(field);
  if (cached) return cached;
  if (!hasOption(field, residency)) return undefined;
  const option = getOption(field, residency);
  const rule: FieldRule = {
    field,
    class: option.class,
    maxLength: option.maxLength,
    pattern: option.pattern === '' ? undefined : new RegExp(option.pattern),
  };
  rules.set(field, rule);
  return rule;
}

/** Every message declared in the contract files, nested ones included. */
export function contractMessages(): DescMessage[] {
  const out: DescMessage[] = [];
  const visit = (m: DescMessage): void => {
    out.push(m);
    m.nestedMessages.forEach(visit);
  };
  for (const file of contractFiles) file.messages.forEach(visit);
  return out;
}

/**
 * Checks that a field's declaration fits its class. Returns a list of problems (empty when the
 * declaration is sound). Used by the contract test and to render the residency report.
 */
export function declarationProblems(field: DescField): string[] {
  const where = `${field.parent.typeName}.${field.name}`;
  const rule = fieldRule(field);
  if (!rule || rule.class === ResidencyClass.UNSPECIFIED) return [`${where}: no residency class`];
  const problems: string[] = [];
  const scalar = field.fieldKind === 'scalar' || field.fieldKind === 'list' ? field.scalar : undefined;
  const isEnum = field.fieldKind === 'enum' || (field.fieldKind === 'list' && field.listKind === 'enum');
  const isMessage = field.fieldKind === 'message' || (field.fieldKind === 'list' && field.listKind === 'message');
  if (field.fieldKind === 'map') problems.push(`${where}: map fields are not allowed (keys would be free-form)`);
  if (scalar === ScalarType.BYTES) problems.push(`${where}: bytes fields are not allowed`);
  switch (rule.class) {
    case ResidencyClass.ID:
    case ResidencyClass.NAME:
    case ResidencyClass.DIGEST:
      if (scalar !== ScalarType.STRING) problems.push(`${where}: class ${ResidencyClass[rule.class]} needs a string field`);
      if (rule.maxLength === 0) problems.push(`${where}: string field needs max_length`);
      if (!rule.pattern) problems.push(`${where}: string field needs a pattern`);
      break;
    case ResidencyClass.ENUM:
      if (!isEnum && scalar !== ScalarType.BOOL) problems.push(`${where}: class ENUM needs an enum or bool field`);
      break;
    case ResidencyClass.NUMBER:
    case ResidencyClass.TIME:
      if (scalar === undefined || scalar === ScalarType.STRING || scalar === ScalarType.BYTES || scalar === ScalarType.BOOL) {
        problems.push(`${where}: class ${ResidencyClass[rule.class]} needs a numeric field`);
      }
      break;
    case ResidencyClass.STRUCTURE:
      if (!isMessage) problems.push(`${where}: class STRUCTURE needs a message field`);
      else {
        const target = field.message;
        if (!target.typeName.startsWith('cairn.')) problems.push(`${where}: nested message ${target.typeName} is not part of the contract`);
      }
      break;
    default:
      problems.push(`${where}: unknown residency class ${String(rule.class)}`);
  }
  return problems;
}

/** A value that breaks its field's residency rule. */
export interface ResidencyViolation {
  /** The proto field name, e.g. `workflow_name`. */
  readonly field: string;
  /** Dotted path from the checked message, e.g. `hello.workflows[0].name`. */
  readonly path: string;
  readonly problem: string;
}

/**
 * Checks the values in a message against the residency rules: every non-empty string must fit
 * its pattern and length. The control plane runs this on every message a data plane sends, so a
 * misbehaving data plane cannot smuggle free text into a NAME or ID field.
 */
export function residencyViolations(desc: DescMessage, message: Message): ResidencyViolation[] {
  const out: ResidencyViolation[] = [];
  walk(desc, message, '', out);
  return out;
}

function walk(desc: DescMessage, value: Record<string, unknown>, prefix: string, out: ResidencyViolation[]): void {
  for (const field of desc.fields) {
    const path = prefix === '' ? field.name : `${prefix}.${field.name}`;
    let raw: unknown;
    if (field.oneof) {
      const oneof = value[field.oneof.localName] as { case?: string; value?: unknown } | undefined;
      if (!oneof || oneof.case !== field.localName) continue;
      raw = oneof.value;
    } else {
      raw = value[field.localName];
    }
    const items: unknown[] = field.fieldKind === 'list' ? (raw as unknown[]) : [raw];
    items.forEach((item, i) => {
      const itemPath = field.fieldKind === 'list' ? `${path}[${i}]` : path;
      if (field.fieldKind === 'message' || (field.fieldKind === 'list' && field.listKind === 'message')) {
        const target = field.message;
        if (item !== undefined) walk(target, item as Record<string, unknown>, itemPath, out);
        return;
      }
      if (typeof item !== 'string' || item === '') return;
      const rule = fieldRule(field);
      if (!rule) {
        out.push({ field: field.name, path: itemPath, problem: 'field has no residency class' });
        return;
      }
      if (rule.maxLength > 0 && item.length > rule.maxLength) {
        out.push({ field: field.name, path: itemPath, problem: `longer than ${rule.maxLength} characters` });
      } else if (rule.pattern && !rule.pattern.test(item)) {
        out.push({ field: field.name, path: itemPath, problem: `does not match ${rule.pattern.source}` });
      }
    });
  }
}
