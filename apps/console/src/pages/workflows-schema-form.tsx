// A form generated from a JSON Schema (draft 2020-12, as the workers catalogue them) with
// react-jsonschema-form, checked in the browser with Ajv before it is sent. Loaded on demand by the
// run form (React.lazy), so the runs list and run pages do not carry rjsf and Ajv.
import type { ReactNode } from 'react';
import Form from '@rjsf/core';
import type { ErrorSchema } from '@rjsf/utils';
import { customizeValidator } from '@rjsf/validator-ajv8';
import { Ajv2020 } from 'ajv/dist/2020.js';

/** The validator for 2020-12 schemas (rjsf's default Ajv reads draft-07 only). */
const validator = customizeValidator({ AjvClass: Ajv2020 });

export interface SchemaFormProps {
  readonly schema: Record<string, unknown>;
  readonly value: unknown;
  readonly onChange: (value: unknown) => void;
  readonly onSubmit: (value: unknown) => void;
  /** Problems the gateway found, placed at their fields. */
  readonly serverErrors: ErrorSchema | undefined;
  readonly disabled: boolean;
  readonly submitLabel: string;
}

export default function SchemaForm(props: SchemaFormProps): ReactNode {
  return (
    <Form
      schema={props.schema}
      formData={props.value}
      validator={validator}
      idPrefix="input"
      onChange={(e) => props.onChange(e.formData)}
      onSubmit={(e) => props.onSubmit(e.formData)}
      extraErrors={props.serverErrors}
      showErrorList="top"
      noHtml5Validate
      focusOnFirstError
      disabled={props.disabled}
      className="schema-form"
    >
      <div className="actions">
        <button type="submit" disabled={props.disabled}>
          {props.submitLabel}
        </button>
      </div>
    </Form>
  );
}
