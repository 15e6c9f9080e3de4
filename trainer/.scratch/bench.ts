import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import * as tfl from '@tensorflow/tfjs-layers';
await tf.setBackend('cpu');
const S = 56;
const m = tfl.sequential();
m.add(tfl.layers.conv2d({ inputShape: [S,S,3], filters: 16, kernelSize: 4, strides: 2, padding: 'same', activation: 'relu' }));
m.add(tfl.layers.conv2d({ filters: 32, kernelSize: 3, padding: 'same', activation: 'relu' }));
m.add(tfl.layers.maxPooling2d({ poolSize: 2 }));
m.add(tfl.layers.conv2d({ filters: 64, kernelSize: 3, padding: 'same', activation: 'relu' }));
m.add(tfl.layers.maxPooling2d({ poolSize: 2 }));
m.add(tfl.layers.conv2d({ filters: 64, kernelSize: 3, padding: 'same', activation: 'relu' }));
m.add(tfl.layers.globalMaxPooling2d({}));
m.add(tfl.layers.dense({ units: 8, activation: 'softmax' }));
m.compile({ optimizer: tf.train.adam(2e-3), loss: 'sparseCategoricalCrossentropy' });
const x = tf.randomNormal([32, S, S, 3]); const y = tf.tensor1d(Array.from({length:32},(_, i)=>i%8));
for (let i = 0; i < 3; i++) { const t0 = Date.now(); await m.trainOnBatch(x, y); console.log('batch', Date.now()-t0, 'ms'); }
const t0 = Date.now(); m.predict(x); console.log('predict', Date.now() - t0);
