/**
 * Argument and document validators in the spirit of Convex's `v`.
 *
 * @example
 * const args = { chatId: v.string(), limit: v.optional(v.number()) };
 */
import type { Value } from "./values.ts";
import { describe, isPlainObject } from "./values.ts";
import { isDocumentId } from "./ids.ts";

export interface Validator<T = unknown, IsOptional extends boolean = boolean> {
  readonly kind: string;
  readonly isOptional: IsOptional;
  /** Returns null when `value` conforms, otherwise a message naming the path and the problem. */
  check(value: Value | undefined, path: string): string | null;
  /** Type carrier only; never set at runtime. */
  readonly _type?: T;
}

export type Infer<V> = V extends Validator<infer T, boolean> ? T : never;

export type PropertyValidators = Record<string, Validator<any, boolean>>;

type OptionalKeys<F extends PropertyValidators> = { [K in keyof F]: F[K] extends Validator<any, true> ? K : never }[keyof F];
type RequiredKeys<F extends PropertyValidators> = Exclude<keyof F, OptionalKeys<F>>;
export type ObjectType<F extends PropertyValidators> = { [K in RequiredKeys<F>]: Infer<F[K]> } & { [K in OptionalKeys<F>]?: Infer<F[K]> };

function make<T>(kind: string, check: (value: Value | undefined, path: string) => string | null): Validator<T, false> {
  return { kind, isOptional: false, check };
}

function expected(what: string, value: Value | undefined, path: string): string {
  return `${path || "value"} must be ${what}, got ${describe(value)}`;
}

function primitive<T>(kind: string, what: string, test: (value: Value | undefined) => boolean): Validator<T, false> {
  return make<T>(kind, (value, path) => (test(value) ? null : expected(what, value, path)));
}

export function checkFields(fields: PropertyValidators, value: Value | undefined, path: string, allowExtra = false): string | null {
  if (!isPlainObject(value)) return expected("an object", value, path);
  for (const [name, validator] of Object.entries(fields)) {
    // Own properties only: `constructor` or `toString` must not be found on Object.prototype.
    const fieldValue = Object.hasOwn(value, name) ? value[name] : undefined;
    const fieldPath = path ? `${path}.${name}` : name;
    if (fieldValue === undefined) {
      if (!validator.isOptional) return `${fieldPath} is required`;
      continue;
    }
    const problem = validator.check(fieldValue as Value, fieldPath);
    if (problem) return problem;
  }
  if (!allowExtra) {
    for (const name of Object.keys(value)) {
      if (!Object.hasOwn(fields, name) && value[name] !== undefined) return `${path ? `${path}.${name}` : name} is not an expected field`;
    }
  }
  return null;
}

export const v = {
  string: () => primitive<string>("string", "a string", (x) => typeof x === "string"),
  number: () => primitive<number>("float64", "a number", (x) => typeof x === "number"),
  float64: () => primitive<number>("float64", "a number", (x) => typeof x === "number"),
  int64: () => primitive<bigint>("int64", "an int64 (bigint)", (x) => typeof x === "bigint"),
  boolean: () => primitive<boolean>("boolean", "a boolean", (x) => typeof x === "boolean"),
  null: () => primitive<null>("null", "null", (x) => x === null),
  bytes: () => primitive<ArrayBuffer>("bytes", "bytes", (x) => x instanceof ArrayBuffer),
  any: () => primitive<any>("any", "any value", (x) => x !== undefined),
  /** A document id. Ids are opaque; the table is checked when the id is read. */
  id: <Table extends string>(table: Table) =>
    primitive<string>(`id(${table})`, `an id of table "${table}"`, (x) => typeof x === "string" && isDocumentId(x)),
  literal: <T extends string | number | boolean | bigint>(literal: T) =>
    primitive<T>(`literal`, JSON.stringify(typeof literal === "bigint" ? `${literal}n` : literal), (x) => x === literal),
  array: <T>(items: Validator<T, false>) =>
    make<T[]>("array", (value, path) => {
      if (!Array.isArray(value)) return expected("an array", value, path);
      for (let i = 0; i < value.length; i++) {
        const problem = items.check(value[i], `${path || "value"}[${i}]`);
        if (problem) return problem;
      }
      return null;
    }),
  object: <F extends PropertyValidators>(fields: F) => make<ObjectType<F>>("object", (value, path) => checkFields(fields, value, path)),
  union: <M extends Validator<any, false>[]>(...members: M) =>
    make<Infer<M[number]>>("union", (value, path) => {
      const problems = members.map((m) => m.check(value, path));
      return problems.some((p) => p === null) ? null : expected(`one of ${members.map((m) => m.kind).join(" | ")}`, value, path);
    }),
  optional: <T>(inner: Validator<T, false>): Validator<T | undefined, true> => ({
    kind: `optional(${inner.kind})`,
    isOptional: true,
    check: (value, path) => (value === undefined ? null : inner.check(value, path)),
  }),
};
