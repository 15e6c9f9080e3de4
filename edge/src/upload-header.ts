/**
 * The upload's header, read by the shared image-header module, with its
 * refusals turned into API errors: 415 for a format or feature we recognise but
 * do not decode, 422 for anything broken.
 */
import { ImageHeaderError, readImageHeader, type ImageHeader } from '@protoatlas/shared';
import { ApiError } from './errors.ts';

export function readUploadHeader(bytes: Uint8Array, opts: { checkComplete: boolean }): ImageHeader {
  try {
    return readImageHeader(bytes, opts);
  } catch (e) {
    if (!(e instanceof ImageHeaderError)) throw e;
    throw new ApiError(e.kind === 'unsupported' ? 'unsupported_media_type' : 'undecodable_image', e.message);
  }
}
