import { describe, expect, it } from "vitest";
import { checkFields, v } from "./validators.ts";

describe("object validation looks at own fields only", () => {
  const fields = { chatId: v.string(), body: v.string() };

  it("refuses fields named like Object.prototype members as undeclared", () => {
    for (const name of ["constructor", "toString", "valueOf", "hasOwnProperty", "__proto__"]) {
      const value = JSON.parse(`{"chatId": "a", "body": "b", ${JSON.stringify(name)}: "x"}`);
      expect(checkFields(fields, value, ""), name).toBe(`${name} is not an expected field`);
    }
  });

  it("does not find a required field on the prototype", () => {
    expect(checkFields({ toString: v.string() }, {}, "")).toBe("toString is required");
    expect(checkFields({ constructor: v.optional(v.string()) }, {}, "")).toBeNull();
  });
});
