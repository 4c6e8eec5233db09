/**
 * Why an import was refused, naming the file of the snapshot and the line
 * ("messages/documents.jsonl line 3: ...") so the operator can fix that line.
 * The deployment is left as it was whenever one is thrown.
 */
export class ImportProblem extends Error {
  override name = "ImportProblem";
  readonly file: string;
  readonly line: number | null;

  constructor(file: string, line: number | null, problem: string) {
    super(line === null ? `${file}: ${problem}` : `${file} line ${line}: ${problem}`);
    this.file = file;
    this.line = line;
  }

  /** A problem the deployment object already described (over RPC only its message travels). */
  static described(message: string): ImportProblem {
    const described = new ImportProblem("", null, "");
    described.message = message;
    return described;
  }
}
