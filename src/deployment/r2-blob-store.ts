/**
 * File bytes in R2: one object per file, keyed `<deployment>/<storage id>`,
 * so deployments sharing a bucket never read each other's files. The Worker
 * streams uploads and downloads with the same key (`fileKey`); the deployment
 * object itself touches bytes only for actions' `store` and `get`.
 */
import type { BlobStore } from "../engine/index.ts";

export function fileKey(deployment: string, storageId: string): string {
  return `${deployment}/${storageId}`;
}

export class R2BlobStore implements BlobStore {
  private readonly bucket: R2Bucket;
  private readonly deployment: string;

  constructor(bucket: R2Bucket, deployment: string) {
    this.bucket = bucket;
    this.deployment = deployment;
  }

  async put(storageId: string, blob: Blob): Promise<void> {
    await this.bucket.put(fileKey(this.deployment, storageId), blob, blob.type ? { httpMetadata: { contentType: blob.type } } : {});
  }

  async get(storageId: string): Promise<Blob | null> {
    const object = await this.bucket.get(fileKey(this.deployment, storageId));
    return object ? object.blob() : null;
  }

  async delete(storageId: string): Promise<void> {
    await this.bucket.delete(fileKey(this.deployment, storageId));
  }
}
