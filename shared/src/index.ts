export * from './similarity.ts';
export * from './preprocess.ts';
export * from './geometry.ts';
export * from './explain.ts';
export * from './colormap.ts';
export * from './manifest.ts';
