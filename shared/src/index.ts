export * from './similarity.ts';
export * from './preprocess.ts';
