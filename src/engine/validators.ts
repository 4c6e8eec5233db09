/**
 * Checks values against validators in the JSON form `convex/values` exports
 * (`exportArgs()`, `exportReturns()`, a table's `documentType`): the backend's
 * job in Convex, so the messages follow Convex's backend wording ("Object is
 * missing the required field `x`", "Value does not match validator.") and add
 * the path, the value and the validator.
 */
import type { Value } from "./values.ts";
import { isPlainObject, jsonToConvex, valuesEqual } from "./values.ts";
import { isDocumentId, tableOfId } from "./ids.ts";

export interface FieldValidatorJson {
  fieldType: ValidatorJson;
  optional: boolean;
}

export type ValidatorJson =
  | { type: "null" | "number" | "bigint" | "boolean" | "string" | "bytes" | "any" | "commitTs" }
  | { type: "literal"; value: unknown }
  | { type: "id"; tableName: string }
  | { type: "array"; value: ValidatorJson }
  | { type: "object"; value: Record<string, FieldValidatorJson> }
  | { type: "record"; keys: ValidatorJson; values: FieldValidatorJson }
  | { type: "union"; value: ValidatorJson[] }
  | { type: "function"; [key: string]: unknown };

/**
 * Why `value` fails `validator`, in Convex's words, or null when it conforms.
 * `idTable` names an id's table as the checking function sees it (a
 * component sees its own tables by their local names, and no other's).
 */
export function validatorProblem(validator: ValidatorJson, value: Value | undefined, idTable: (id: string) => string | null = tableOfId): string | null {
  const problem = check(validator, value, "", idTable);
  if (!problem) return null;
  const where = problem.path ? `\n\nPath: ${problem.path}` : "";
  return `${problem.message}${where}\nValue: ${printValue(problem.value)}\nValidator: ${printValidator(problem.validator)}`;
}

interface Problem {
  message: string;
  path: string;
  value: Value | undefined;
  validator: ValidatorJson;
}

const MISMATCH = "Value does not match validator.";

function check(validator: ValidatorJson, value: Value | undefined, path: string, idTable: (id: string) => string | null): Problem | null {
  const fail = (message = MISMATCH): Problem => ({ message, path, value, validator });
  switch (validator.type) {
    case "any":
      return value === undefined ? fail() : null;
    case "null":
      return value === null ? null : fail();
    case "number":
      return typeof value === "number" ? null : fail();
    case "bigint":
      return typeof value === "bigint" ? null : fail();
    case "boolean":
      return typeof value === "boolean" ? null : fail();
    case "string":
      return typeof value === "string" ? null : fail();
    case "bytes":
      return value instanceof ArrayBuffer ? null : fail();
    case "literal":
      return valuesEqual(value, jsonToConvex(validator.value)) ? null : fail();
    case "id": {
      if (typeof value !== "string" || !isDocumentId(value)) return fail();
      const table = idTable(value);
      if (table !== null && table !== validator.tableName)
        return fail(`Found ID "${value}" from table \`${table}\`, which does not match the table name in validator \`v.id("${validator.tableName}")\`.`);
      return null;
    }
    case "array": {
      if (!Array.isArray(value)) return fail();
      for (let i = 0; i < value.length; i++) {
        const problem = check(validator.value, value[i], `${path}[${i}]`, idTable);
        if (problem) return problem;
      }
      return null;
    }
    case "object": {
      if (!isPlainObject(value)) return fail();
      for (const [name, field] of Object.entries(validator.value)) {
        // Own properties only: `constructor` or `toString` must not be found on Object.prototype.
        const fieldValue = Object.hasOwn(value, name) ? (value[name] as Value | undefined) : undefined;
        if (fieldValue === undefined) {
          if (field.optional) continue;
          return fail(`Object is missing the required field \`${name}\`. Consider wrapping the field validator in \`v.optional(...)\` if this is expected.`);
        }
        const problem = check(field.fieldType, fieldValue, `${path}.${name}`, idTable);
        if (problem) return problem;
      }
      for (const name of Object.keys(value)) {
        if (!Object.hasOwn(validator.value, name) && value[name] !== undefined)
          return fail(`Object contains extra field \`${name}\` that is not in the validator.`);
      }
      return null;
    }
    case "record": {
      if (!isPlainObject(value)) return fail();
      for (const [key, fieldValue] of Object.entries(value)) {
        if (fieldValue === undefined) continue;
        const keyProblem = check(validator.keys, key, `${path}.${key}`, idTable);
        if (keyProblem) return keyProblem;
        const problem = check(validator.values.fieldType, fieldValue as Value, `${path}.${key}`, idTable);
        if (problem) return problem;
      }
      return null;
    }
    case "union":
      return validator.value.some((member) => check(member, value, path, idTable) === null) ? null : fail();
    case "commitTs":
      return typeof value === "bigint" ? null : fail();
    case "function":
      return typeof value === "string" ? null : fail();
  }
}

function printValue(value: Value | undefined): string {
  if (value === undefined) return "undefined";
  const text = JSON.stringify(value, (_key, item) =>
    typeof item === "bigint" ? `${item}n` : item instanceof ArrayBuffer ? `<bytes(${item.byteLength})>` : item,
  );
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

/** A validator as the `v.` expression that built it (Convex prints validators this way). */
export function printValidator(validator: ValidatorJson): string {
  switch (validator.type) {
    case "null":
    case "number":
    case "boolean":
    case "string":
    case "bytes":
    case "any":
      return `v.${validator.type === "number" ? "float64" : validator.type}()`;
    case "bigint":
      return "v.int64()";
    case "commitTs":
    case "function":
      return `v.${validator.type}()`;
    case "literal":
      return `v.literal(${JSON.stringify(validator.value)})`;
    case "id":
      return `v.id("${validator.tableName}")`;
    case "array":
      return `v.array(${printValidator(validator.value)})`;
    case "object": {
      const fields = Object.entries(validator.value).map(([name, field]) => {
        const inner = printValidator(field.fieldType);
        return `${name}: ${field.optional ? `v.optional(${inner})` : inner}`;
      });
      return `v.object({${fields.join(", ")}})`;
    }
    case "record":
      return `v.record(${printValidator(validator.keys)}, ${printValidator(validator.values.fieldType)})`;
    case "union":
      return `v.union(${validator.value.map(printValidator).join(", ")})`;
  }
}
